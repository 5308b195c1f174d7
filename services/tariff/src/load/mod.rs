//! Loading a national tariff schedule from a file, as a platform team runs
//! it: `tradewatch-schedule load`. The file is CSV, one line per HS code and
//! treatment (the MFN rate, each preferential rate, each special measure),
//! with a header naming its columns:
//!
//! | column | meaning |
//! | --- | --- |
//! | `hs_code` | the code or prefix the line covers (dots allowed) |
//! | `kind` | `MFN`, `PREFERENTIAL`, `SURTAX`, `ANTI_DUMPING`, … (the MeasureKind names) |
//! | `origins` | empty: every origin; `@NAME`: a group of the groups file; or economies, space-separated |
//! | `ad_valorem_percent` | the rate |
//! | `specific_amount`, `specific_currency`, `specific_unit` | optional: a duty per unit |
//! | `effective_from`, `effective_to` | dates; the second optional |
//! | `source_url` | where the line is published |
//! | `reference`, `title` | optional: derived from the importer, kind, origins and code when absent |
//!
//! The whole file is read and every line checked with the service's own
//! rules before the first write, so a bad file writes nothing and names each
//! bad line by its number. The lines are then written through the public API
//! with `ImportMeasures`, in batches of at most 1,000 (a few in flight at
//! once), each all or nothing and idempotent: a line already stored as
//! written is left alone, so a load run again after an interruption goes on
//! where it stopped.

pub mod generate;

use std::collections::HashMap;

use sha2::{Digest as _, Sha256};
use tradewatch_common::{
    proto::{common::Money, tariff as pb},
    validate::Violations,
};

use crate::api::convert::measure_spec;

/// Named groups of origins (`@CPTPP`), read from their own CSV: `group` and
/// `economies`, the economies space-separated.
#[derive(Debug, Clone, Default)]
pub struct Groups(HashMap<String, Vec<String>>);

impl Groups {
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut groups = HashMap::new();
        let mut errors = Vec::new();
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let headers = match reader.headers() {
            Ok(h) => h.clone(),
            Err(err) => return Err(vec![format!("the groups file has no header: {err}")]),
        };
        let (Some(name_at), Some(economies_at)) = (column(&headers, "group"), column(&headers, "economies")) else {
            return Err(vec!["the groups file's header must name the columns group and economies".into()]);
        };
        for (record, line) in reader.records().zip(2..) {
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    errors.push(format!("groups line {line}: {err}"));
                    continue;
                }
            };
            let name = record.get(name_at).unwrap_or_default().to_owned();
            let economies: Vec<String> =
                record.get(economies_at).unwrap_or_default().split_whitespace().map(str::to_owned).collect();
            if name.is_empty() || economies.is_empty() {
                errors.push(format!("groups line {line}: a group needs a name and at least one economy"));
            } else if groups.insert(name.clone(), economies).is_some() {
                errors.push(format!("groups line {line}: the group {name} is defined twice"));
            }
        }
        if errors.is_empty() { Ok(Self(groups)) } else { Err(errors) }
    }

    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.0.get(name).map(Vec::as_slice)
    }
}

/// One line of the schedule, as the measure it writes.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its line number in the file (the header is line 1).
    pub line: usize,
    pub measure: pb::TariffMeasure,
}

fn column(headers: &csv::StringRecord, name: &str) -> Option<usize> {
    headers.iter().position(|h| h.eq_ignore_ascii_case(name))
}

const REQUIRED_COLUMNS: [&str; 5] = ["hs_code", "kind", "origins", "ad_valorem_percent", "effective_from"];

/// Reads a schedule of `importer`'s: every line as a measure, or every bad
/// line named by its number (and nothing else).
pub fn parse(text: &str, importer: &str, groups: &Groups) -> Result<Vec<Line>, Vec<String>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(err) => return Err(vec![format!("line 1: not a CSV header: {err}")]),
    };
    let missing: Vec<&str> = REQUIRED_COLUMNS.iter().copied().filter(|c| column(&headers, c).is_none()).collect();
    if !missing.is_empty() {
        return Err(vec![format!("line 1: the header must name the columns {}", missing.join(", "))]);
    }
    let at = |name: &str| column(&headers, name);
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (record, line) in reader.records().zip(2..) {
        let record = match record {
            Ok(r) => r,
            Err(err) => {
                errors.push(format!("line {line}: {err}"));
                continue;
            }
        };
        let get = |name: &str| at(name).and_then(|i| record.get(i)).unwrap_or_default();
        let measure = match measure_of(importer, groups, &get) {
            Ok(m) => m,
            Err(err) => {
                errors.push(format!("line {line}: {err}"));
                continue;
            }
        };
        let mut v = Violations::new();
        let _ = measure_spec(&mut v, "line", &measure);
        if let Err(err) = v.finish() {
            errors.push(format!("line {line}: {}", err.message().replace("line.", "")));
            continue;
        }
        if let Some(first) = seen.insert(measure.reference.clone(), line) {
            errors.push(format!(
                "line {line}: the reference {} is the one of line {first}: each line once",
                measure.reference
            ));
            continue;
        }
        lines.push(Line { line, measure });
    }
    if errors.is_empty() { Ok(lines) } else { Err(errors) }
}

/// The measure one line writes.
fn measure_of<'a>(
    importer: &str,
    groups: &Groups,
    get: &impl Fn(&str) -> &'a str,
) -> Result<pb::TariffMeasure, String> {
    let kind_name = get("kind").to_ascii_uppercase();
    let kind = pb::MeasureKind::from_str_name(&format!("MEASURE_KIND_{kind_name}"))
        .filter(|k| *k != pb::MeasureKind::Unspecified)
        .ok_or_else(|| format!("kind: {:?} is not a kind of measure (MFN, PREFERENTIAL, SURTAX, …)", get("kind")))?;
    let origins = get("origins");
    let (treatment, targets) = match origins.strip_prefix('@') {
        Some(name) => {
            let members =
                groups.get(name).ok_or_else(|| format!("origins: the group {name} is not in the groups file"))?;
            (name.to_owned(), members.to_vec())
        }
        None if origins.is_empty() => ("ALL".to_owned(), vec![]),
        None => {
            let economies: Vec<String> = origins.split_whitespace().map(str::to_owned).collect();
            (economies.join("+"), economies)
        }
    };
    let code = get("hs_code");
    let digits: String = code.chars().filter(|c| *c != '.').collect();
    let reference = match get("reference") {
        "" => format!("{importer}-{kind_name}-{treatment}-{digits}"),
        given => given.to_owned(),
    };
    let title = match get("title") {
        "" => format!("{kind_name} rate of {importer} on {code}, origins {treatment}"),
        given => given.to_owned(),
    };
    let specific_duty = match (get("specific_amount"), get("specific_currency"), get("specific_unit")) {
        ("", "", "") => None,
        (amount, currency, unit) => Some(pb::SpecificDuty {
            amount: Some(Money { currency_code: currency.to_owned(), amount: amount.to_owned() }),
            unit: unit.to_owned(),
        }),
    };
    Ok(pb::TariffMeasure {
        reference,
        title,
        imposing_economy: importer.to_owned(),
        target_economies: targets,
        kind: kind.into(),
        hs_codes: vec![code.to_owned()],
        ad_valorem_percent: get("ad_valorem_percent").to_owned(),
        specific_duty,
        effective_from: get("effective_from").to_owned(),
        effective_to: get("effective_to").to_owned(),
        source_url: get("source_url").to_owned(),
        ..Default::default()
    })
}

/// The most lines one `ImportMeasures` carries.
pub const BATCH: usize = 1_000;

/// The `request_id` of a batch within one run of the loader: a retry of a
/// batch that may have been written (a timeout, a lost connection) answers
/// as the first time. A new run draws a new `run`, so its answers count what
/// it found (a batch an interrupted run wrote is `unchanged`, not replayed).
pub fn batch_request_id(run: &uuid::Uuid, batch: &[Line]) -> String {
    let mut digest = Sha256::new();
    digest.update(b"tradewatch-schedule/");
    digest.update(run.as_bytes());
    for line in batch {
        digest.update(prost::Message::encode_to_vec(&line.measure));
    }
    let digest = digest.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

/// What a load did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub created: usize,
    pub unchanged: usize,
    pub batches: usize,
}

/// A refusal of the service, with the lines of the batch it names: the
/// batches before it are written, this one is not.
#[derive(Debug)]
pub struct Refused {
    pub first_line: usize,
    pub last_line: usize,
    pub message: String,
    pub loaded: Loaded,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the batch of lines {}–{} was refused, nothing of it written: {} ({} lines created and {} already there before it; batches sent beside it may have landed, and a run again once it is fixed goes on from there)",
            self.first_line, self.last_line, self.message, self.loaded.created, self.loaded.unchanged
        )
    }
}

/// `measures[i]` in a message of the service, as the line of the file.
fn name_lines(message: &str, batch: &[Line]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("measures[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "measures[".len()..];
        let Some(close) = after.find(']') else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        match after[..close].parse::<usize>().ok().and_then(|i| batch.get(i)) {
            Some(line) => out.push_str(&format!("line {}", line.line)),
            None => out.push_str(&rest[at..at + "measures[".len() + close + 1]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Batches sent before the first is answered: the service validates and
/// plans one while the database writes another.
pub const IN_FLIGHT: usize = 4;

/// Writes `lines` through `client` in batches, [`IN_FLIGHT`] at a time,
/// calling `progress` with the lines done after each, in file order. On a
/// refusal no further batch is sent; those already sent after the refused
/// one may be written or not (each all or nothing), and a run again resumes.
pub async fn load<T>(
    client: &pb::tariff_service_client::TariffServiceClient<T>,
    lines: &[Line],
    mut progress: impl FnMut(usize),
) -> Result<Loaded, Refused>
where
    T: tonic::client::GrpcService<tonic::body::Body> + Clone,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    use futures::StreamExt as _;

    let mut loaded = Loaded::default();
    let mut done = 0;
    let run = uuid::Uuid::now_v7();
    let mut answers = futures::stream::iter(lines.chunks(BATCH))
        .map(|batch| {
            let mut client = client.clone();
            async move { (batch, send(&mut client, &run, batch).await) }
        })
        .buffered(IN_FLIGHT);
    while let Some((batch, answer)) = answers.next().await {
        let answer = answer.map_err(|status| Refused {
            first_line: batch.first().map_or(0, |l| l.line),
            last_line: batch.last().map_or(0, |l| l.line),
            message: format!("{:?}: {}", status.code(), name_lines(status.message(), batch)),
            loaded,
        })?;
        loaded.created += usize::try_from(answer.created).unwrap_or_default();
        loaded.unchanged += usize::try_from(answer.unchanged).unwrap_or_default();
        loaded.batches += 1;
        done += batch.len();
        progress(done);
    }
    Ok(loaded)
}

/// One batch, retried while the service is unavailable or the write was
/// aborted: the same `request_id` answers as the first time.
async fn send<T>(
    client: &mut pb::tariff_service_client::TariffServiceClient<T>,
    run: &uuid::Uuid,
    batch: &[Line],
) -> Result<pb::ImportMeasuresResponse, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let request = pb::ImportMeasuresRequest {
        measures: batch.iter().map(|l| l.measure.clone()).collect(),
        request_id: batch_request_id(run, batch),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        match client.import_measures(request.clone()).await {
            Ok(answer) => return Ok(answer.into_inner()),
            Err(status) if attempt < 5 && matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Aborted) => {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HEADER: &str = "hs_code,kind,origins,ad_valorem_percent,effective_from,source_url\n";

    fn groups() -> Groups {
        Groups::parse("group,economies\nCUSMA,MEX USA\n").unwrap()
    }

    #[test]
    fn lines_become_measures_with_derived_references() {
        let text = format!("{HEADER}8703.80.00,MFN,,6.1,2024-01-01,\n8703.80.00,PREFERENTIAL,@CUSMA,0,2024-01-01,\n");
        let lines = parse(&text, "CAN", &groups()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].line, lines[0].measure.reference.as_str()), (2, "CAN-MFN-ALL-87038000"));
        assert_eq!(lines[1].measure.target_economies, ["MEX", "USA"]);
        assert_eq!(lines[1].measure.reference, "CAN-PREFERENTIAL-CUSMA-87038000");
    }

    #[test]
    fn every_bad_line_is_named_and_nothing_is_kept() {
        let text = format!(
            "{HEADER}8703.80.00,MFN,,6.1,2024-01-01,\n87,MFN,,-1,2024-01-01,\n8703.80.00,PREFERENTIAL,@CPTPP,0,2024-01-01,\n8703.80.00,MFN,,6.1,2024-01-01,\n8703,WHATEVER,,1,2024-01-01,\n"
        );
        let errors = parse(&text, "CAN", &groups()).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("line 3: ") && errors[0].contains("ad_valorem_percent"), "{errors:#?}");
        assert!(errors[1].starts_with("line 4: ") && errors[1].contains("the group CPTPP"), "{errors:#?}");
        assert!(errors[2].starts_with("line 5: ") && errors[2].contains("line 2"), "a duplicate: {errors:#?}");
        assert!(errors[3].starts_with("line 6: ") && errors[3].contains("kind"), "{errors:#?}");
    }

    #[test]
    fn a_header_without_a_required_column_is_refused() {
        let errors = parse("hs_code,kind\n87,MFN\n", "CAN", &groups()).unwrap_err();
        assert!(errors[0].contains("origins, ad_valorem_percent, effective_from"), "{errors:#?}");
    }

    #[test]
    fn the_service_s_field_paths_become_line_numbers() {
        let lines = parse(&format!("{HEADER}8703,MFN,,6.1,2024-01-01,\n8704,MFN,,6.1,2024-01-01,\n"), "CAN", &groups())
            .unwrap();
        assert_eq!(
            name_lines("a measure with measures[1].reference \"X\" already exists; measures[9]", &lines),
            "a measure with line 3.reference \"X\" already exists; measures[9]"
        );
    }

    #[test]
    fn a_batch_s_request_id_depends_on_its_run_and_its_lines() {
        let lines = parse(&format!("{HEADER}8703,MFN,,6.1,2024-01-01,\n8704,MFN,,6.1,2024-01-01,\n"), "CAN", &groups())
            .unwrap();
        let run = uuid::Uuid::now_v7();
        assert_eq!(batch_request_id(&run, &lines), batch_request_id(&run, &lines.clone()));
        assert_ne!(batch_request_id(&run, &lines[..1]), batch_request_id(&run, &lines));
        assert_ne!(batch_request_id(&run, &lines), batch_request_id(&uuid::Uuid::now_v7(), &lines), "another run");
    }
}
