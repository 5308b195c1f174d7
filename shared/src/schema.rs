//! What every service's migrations share: foreign keys that cascade, and
//! link tables (a row's list of HS prefixes, economies or ids, one row per
//! element, indexed for the filters that look up by element).

use sea_orm_migration::prelude::*;

/// A foreign key from `from` to `to` whose rows go when the parent goes.
pub fn cascade(from: (impl IntoIden, impl IntoIden), to: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create().from(from.0, from.1).to(to.0, to.1).on_delete(ForeignKeyAction::Cascade).to_owned()
}

/// Creates `table`, linking each row of `parent` (by its `id`, held in
/// `parent_column`) to values of `value`: the pair is the primary key, the
/// links go with their parent, and the index `index` (value, parent) serves
/// lookups by value.
pub async fn create_link_table(
    manager: &SchemaManager<'_>,
    table: &str,
    parent: &str,
    parent_column: &str,
    mut value: ColumnDef,
    index: &str,
) -> Result<(), DbErr> {
    let value_name = value.get_column_name();
    manager
        .create_table(
            Table::create()
                .table(Alias::new(table))
                .col(ColumnDef::new(Alias::new(parent_column)).uuid().not_null())
                .col(value.not_null())
                .primary_key(Index::create().col(Alias::new(parent_column)).col(Alias::new(&value_name)))
                .foreign_key(&mut cascade(
                    (Alias::new(table), Alias::new(parent_column)),
                    (Alias::new(parent), Alias::new("id")),
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name(index)
                .table(Alias::new(table))
                .col(Alias::new(&value_name))
                .col(Alias::new(parent_column))
                .to_owned(),
        )
        .await
}

/// Who wrote a row: adds each of `columns` to `table` as text, `anonymous` in
/// the rows already there (they were written before writes had actors). One
/// column a statement, as SQLite alters.
pub async fn add_actor_columns(manager: &SchemaManager<'_>, table: &str, columns: &[&str]) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new(table))
                    .add_column(
                        ColumnDef::new(Alias::new(*column)).string_len(256).not_null().default(crate::auth::ANONYMOUS),
                    )
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Undoes [`add_actor_columns`].
pub async fn drop_actor_columns(manager: &SchemaManager<'_>, table: &str, columns: &[&str]) -> Result<(), DbErr> {
    for column in columns {
        manager
            .alter_table(Table::alter().table(Alias::new(table)).drop_column(Alias::new(*column)).to_owned())
            .await?;
    }
    Ok(())
}
