//! Batched Gets (`BatchGetMeasures`, `BatchGetDisputes`): 1 to 100 ids in,
//! the resources in the order asked out, or NOT_FOUND naming every missing id.

use uuid::Uuid;

use crate::{
    error::{Error, Result},
    types::parse_id,
    validate::Violations,
};

/// Most ids one batched call takes.
pub const BATCH_LIMIT: usize = 100;

/// The ids of a batched Get; a bad one is named `ids[i]`.
pub fn ids(v: &mut Violations, raw: &[String]) -> Vec<Uuid> {
    if raw.is_empty() {
        v.add("ids", format!("is required: 1 to {BATCH_LIMIT} ids"));
    } else if raw.len() > BATCH_LIMIT {
        v.add("ids", format!("has {} ids; at most {BATCH_LIMIT}", raw.len()));
        return Vec::new();
    }
    raw.iter().enumerate().filter_map(|(i, s)| v.check(format!("ids[{i}]"), parse_id(s))).collect()
}

/// The ids of a batched Get, or INVALID_ARGUMENT naming the bad ones.
pub fn parse_ids(raw: &[String]) -> Result<Vec<Uuid>> {
    let mut v = Violations::new();
    let ids = ids(&mut v, raw);
    v.finish()?;
    Ok(ids)
}

/// `found` in the order of `ids` (repeats included), or NOT_FOUND with the
/// missing ids in the ErrorInfo metadata `missing_ids`.
pub fn in_request_order<T: Clone>(
    resource: &'static str,
    ids: &[Uuid],
    found: &[T],
    id_of: impl Fn(&T) -> Uuid,
) -> Result<Vec<T>> {
    let missing: Vec<String> =
        ids.iter().filter(|id| !found.iter().any(|f| id_of(f) == **id)).map(ToString::to_string).collect();
    if !missing.is_empty() {
        return Err(Error::not_found_many(resource, &missing));
    }
    Ok(ids.iter().filter_map(|id| found.iter().find(|f| id_of(f) == *id).cloned()).collect())
}

/// Refuses a batched answer that would not fit in one message: a batch
/// cannot be continued like a page, so the caller asks for fewer ids.
pub fn check_size<P: prost::Message>(resource: &'static str, items: &[P], budget: usize) -> Result<()> {
    let size: usize = items.iter().map(|m| m.encoded_len() + 6).sum();
    if size > budget {
        return Err(Error::out_of_range(
            crate::Reason::ResponseTooLarge,
            format!(
                "these {} {resource}s take {size} bytes, more than one message carries; ask for fewer ids",
                items.len()
            ),
        )
        .with_metadata("max_bytes", budget.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_named() {
        let mut v = Violations::new();
        assert!(ids(&mut v, &[]).is_empty());
        assert!(!v.is_empty());
        let mut v = Violations::new();
        let good = Uuid::now_v7().to_string();
        assert_eq!(ids(&mut v, &[good.clone(), "x".into()]).len(), 1);
        assert_eq!(v.finish().err().map(|e| e.violations()[0].field.clone()), Some("ids[1]".into()));
        let mut v = Violations::new();
        ids(&mut v, &vec![good; BATCH_LIMIT + 1]);
        assert!(!v.is_empty());
    }

    #[test]
    fn results_follow_the_request_and_missing_ids_are_listed() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(in_request_order("x", &[b, a, b], &[a, b], |id| *id).ok(), Some(vec![b, a, b]));
        let err = in_request_order("x", &[a, c], &[a], |id| *id).err();
        assert_eq!(err.and_then(|e| e.metadata().get("missing_ids").cloned()), Some(c.to_string()));
    }
}
