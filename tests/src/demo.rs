//! The demo dataset — the real Canada–China record — and its loader.
//!
//! The loader is an ordinary gRPC client of the three public APIs, meant to
//! be copied: tariff measures first, then disputes (citing the measures by
//! the ids the tariff service gave them, with their events replayed through
//! `AdvanceDispute` and `RecordDisputeEvent` on their dates), then dialogue
//! sessions and their commitments. Every write carries a `request_id` derived
//! from the record's key, so running it twice, or again after it was cut
//! short, writes each record once.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tradewatch_common::proto::{
    dialogue::{self as lpb, dialogue_service_client::DialogueServiceClient},
    dispute::{self as dpb, dispute_service_client::DisputeServiceClient},
    tariff::{self as tpb, tariff_service_client::TariffServiceClient},
};

/// The dataset, as shipped in `tests/demo/canada-china.json`.
pub const DATASET: &str = include_str!("../demo/canada-china.json");

#[derive(Debug, Deserialize)]
pub struct Dataset {
    pub measures: Vec<Measure>,
    /// Published trade figures on the lines the measures hit.
    #[serde(default)]
    pub flows: Vec<Flow>,
    pub disputes: Vec<Dispute>,
    pub sessions: Vec<Session>,
}

/// One published trade figure: what the exporter sold the importer of a
/// product in a year, as the source states it.
#[derive(Debug, Deserialize)]
pub struct Flow {
    pub key: String,
    pub exporting_economy: String,
    pub importing_economy: String,
    pub hs_code: String,
    pub year: i32,
    pub currency: String,
    pub value: String,
    #[serde(default)]
    pub quantity: String,
    #[serde(default)]
    pub unit: String,
    pub source_url: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
pub struct Measure {
    pub key: String,
    pub reference: String,
    pub title: String,
    pub imposing_economy: String,
    #[serde(default)]
    pub target_economies: Vec<String>,
    pub kind: String,
    pub hs_codes: Vec<String>,
    #[serde(default)]
    pub excluded_hs_codes: Vec<String>,
    pub ad_valorem_percent: String,
    #[serde(default)]
    pub announced_on: String,
    pub effective_from: String,
    #[serde(default)]
    pub effective_to: String,
    pub quota: Option<Quota>,
    #[serde(default)]
    pub source_url: String,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
pub struct Quota {
    pub quantity: String,
    pub unit: String,
    pub period_start: String,
    pub period_end: String,
}

#[derive(Debug, Deserialize)]
pub struct Dispute {
    pub key: String,
    pub reference: String,
    pub title: String,
    pub complainant: String,
    pub respondent: String,
    #[serde(default)]
    pub third_parties: Vec<String>,
    pub forum: String,
    #[serde(default)]
    pub hs_codes: Vec<String>,
    #[serde(default)]
    pub measure_keys: Vec<String>,
    #[serde(default)]
    pub legal_basis: Vec<String>,
    pub opened_on: String,
    #[serde(default)]
    pub source_url: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub events: Vec<DisputeEvent>,
}

#[derive(Debug, Deserialize)]
pub struct DisputeEvent {
    pub on: String,
    pub to_stage: Option<String>,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
pub struct Session {
    pub key: String,
    pub title: String,
    pub track: String,
    pub level: String,
    pub host_economy: String,
    pub economies: Vec<String>,
    #[serde(default)]
    pub location: String,
    pub starts_on: String,
    pub ends_on: String,
    pub status: String,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default)]
    pub agenda: Vec<AgendaItem>,
    #[serde(default)]
    pub outcome_summary: String,
    #[serde(default)]
    pub source_url: String,
    #[serde(default)]
    pub commitments: Vec<Commitment>,
}

#[derive(Debug, Deserialize)]
pub struct Participant {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub economy: String,
}

#[derive(Debug, Deserialize)]
pub struct AgendaItem {
    pub topic: String,
    #[serde(default)]
    pub dispute_keys: Vec<String>,
    #[serde(default)]
    pub measure_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Commitment {
    pub description: String,
    pub owner_economies: Vec<String>,
    #[serde(default)]
    pub due_on: String,
    pub status: String,
    pub measure_key: Option<String>,
    pub dispute_key: Option<String>,
    pub effect: Option<String>,
    #[serde(default)]
    pub effect_on: String,
}

impl Dataset {
    /// The dataset as shipped. The record keeps the file exactly as its
    /// fact-check left it, where a record may say `note` twice: both notes
    /// are kept, joined.
    pub fn load() -> anyhow::Result<Self> {
        let merged: Merged = serde_json::from_str(DATASET)?;
        Ok(serde_json::from_value(merged.0)?)
    }
}

/// JSON read with repeated keys merged rather than refused: repeated texts
/// are joined with a space, anything else repeated keeps its last value.
struct Merged(serde_json::Value);

impl<'de> Deserialize<'de> for Merged {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use serde_json::Value;

        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Merged;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Merged, E> {
                Ok(Merged(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Merged, E> {
                Ok(Merged(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Merged, E> {
                Ok(Merged(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Merged, E> {
                Ok(Merged(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Merged, E> {
                Ok(Merged(Value::String(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Merged, E> {
                Ok(Merged(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merged, A::Error> {
                let mut out = Vec::new();
                while let Some(Merged(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Merged(Value::Array(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Merged, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((key, Merged(value))) = map.next_entry::<String, Merged>()? {
                    match (out.get_mut(&key), value) {
                        (Some(Value::String(first)), Value::String(more)) => {
                            first.push(' ');
                            first.push_str(&more);
                        }
                        (_, value) => {
                            out.insert(key, value);
                        }
                    }
                }
                Ok(Merged(Value::Object(out)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Where the four services listen, and how to reach them when TLS and
/// auth are on.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub tariff: String,
    pub dispute: String,
    pub dialogue: String,
    pub relations: String,
    pub security: Option<ClientSecurity>,
}

/// What a client of a secured stack needs: the CA that signed the servers'
/// certificates, and a bearer token.
#[derive(Debug, Clone)]
pub struct ClientSecurity {
    pub ca_file: std::path::PathBuf,
    pub token: String,
}

/// Adds the bearer token of a secured stack to every call.
#[derive(Clone)]
struct Bearer(Option<tonic::metadata::AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Endpoints {
    fn bearer(&self) -> anyhow::Result<Bearer> {
        Ok(Bearer(self.security.as_ref().map(|s| format!("Bearer {}", s.token).parse()).transpose()?))
    }

    async fn connect(&self, url: &str) -> anyhow::Result<Channel> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
        if let Some(security) = &self.security {
            let ca = tonic::transport::Certificate::from_pem(std::fs::read(&security.ca_file)?);
            endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca))?;
        }
        Ok(endpoint.connect().await?)
    }
}

/// What a run of the loader did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub measures: usize,
    pub flows: usize,
    pub disputes: usize,
    pub events: usize,
    pub sessions: usize,
    pub commitments: usize,
}

/// A stable `request_id` for one write of the loader.
fn request_id(parts: &[&str]) -> String {
    let digest = Sha256::digest(format!("tradewatch-demo/{}", parts.join("/")));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

fn resolve(ids: &HashMap<String, String>, keys: &[String], what: &str) -> anyhow::Result<Vec<String>> {
    keys.iter()
        .map(|k| ids.get(k).cloned().ok_or_else(|| anyhow::anyhow!("unknown {what} key {k:?} in the dataset")))
        .collect()
}

fn enum_value(name: &str, parse: impl Fn(&str) -> Option<i32>) -> anyhow::Result<i32> {
    parse(name).ok_or_else(|| anyhow::anyhow!("{name:?} is not a known value"))
}

/// Whether the stack already holds data: then the loader leaves it alone.
pub async fn is_loaded(at: &Endpoints) -> anyhow::Result<bool> {
    let mut tariff = TariffServiceClient::with_interceptor(at.connect(&at.tariff).await?, at.bearer()?);
    let page =
        tariff.list_measures(tpb::ListMeasuresRequest { page_size: 1, ..Default::default() }).await?.into_inner();
    Ok(!page.measures.is_empty())
}

/// Loads `data` through the public APIs.
pub async fn load(data: &Dataset, at: &Endpoints) -> anyhow::Result<Loaded> {
    let mut tariff = TariffServiceClient::with_interceptor(at.connect(&at.tariff).await?, at.bearer()?);
    let mut disputes = DisputeServiceClient::with_interceptor(at.connect(&at.dispute).await?, at.bearer()?);
    let mut dialogue = DialogueServiceClient::with_interceptor(at.connect(&at.dialogue).await?, at.bearer()?);
    let mut loaded = Loaded::default();

    let mut measure_ids = HashMap::new();
    for m in &data.measures {
        let measure = tpb::TariffMeasure {
            reference: m.reference.clone(),
            title: m.title.clone(),
            imposing_economy: m.imposing_economy.clone(),
            target_economies: m.target_economies.clone(),
            kind: enum_value(&format!("MEASURE_KIND_{}", m.kind), |n| {
                tpb::MeasureKind::from_str_name(n).map(Into::into)
            })?,
            hs_codes: m.hs_codes.clone(),
            excluded_hs_codes: m.excluded_hs_codes.clone(),
            ad_valorem_percent: m.ad_valorem_percent.clone(),
            announced_on: m.announced_on.clone(),
            effective_from: m.effective_from.clone(),
            effective_to: m.effective_to.clone(),
            quota: m.quota.as_ref().map(|q| tpb::Quota {
                quantity: q.quantity.clone(),
                unit: q.unit.clone(),
                period_start: q.period_start.clone(),
                period_end: q.period_end.clone(),
                used: String::new(),
            }),
            source_url: m.source_url.clone(),
            note: m.note.clone(),
            ..Default::default()
        };
        let req = tpb::CreateMeasureRequest { measure: Some(measure), request_id: request_id(&["measure", &m.key]) };
        let created = tariff.create_measure(req).await?.into_inner().measure.unwrap_or_default();
        measure_ids.insert(m.key.clone(), created.id);
        loaded.measures += 1;
    }

    // The figures in one import: all or nothing, and once however often
    // the loader runs.
    if !data.flows.is_empty() {
        let flows = data
            .flows
            .iter()
            .map(|f| tpb::TradeFlow {
                exporting_economy: f.exporting_economy.clone(),
                importing_economy: f.importing_economy.clone(),
                hs_code: f.hs_code.clone(),
                year: f.year,
                value: Some(tradewatch_common::proto::common::Money {
                    currency_code: f.currency.clone(),
                    amount: f.value.clone(),
                }),
                quantity: f.quantity.clone(),
                unit: f.unit.clone(),
                source_url: f.source_url.clone(),
                note: f.note.clone(),
                ..Default::default()
            })
            .collect();
        let keys: Vec<&str> = data.flows.iter().map(|f| f.key.as_str()).collect();
        let req =
            tpb::ImportTradeFlowsRequest { flows, request_id: request_id(&[&["flows"], keys.as_slice()].concat()) };
        tariff.import_trade_flows(req).await?;
        loaded.flows = data.flows.len();
    }

    let mut dispute_ids = HashMap::new();
    for d in &data.disputes {
        let dispute = dpb::Dispute {
            reference: d.reference.clone(),
            title: d.title.clone(),
            summary: d.note.clone(),
            complainant: d.complainant.clone(),
            respondent: d.respondent.clone(),
            third_parties: d.third_parties.clone(),
            forum: enum_value(&format!("DISPUTE_FORUM_{}", d.forum), |n| {
                dpb::DisputeForum::from_str_name(n).map(Into::into)
            })?,
            hs_codes: d.hs_codes.clone(),
            measure_ids: resolve(&measure_ids, &d.measure_keys, "measure")?,
            legal_basis: d.legal_basis.join("; "),
            opened_on: d.opened_on.clone(),
            source_url: d.source_url.clone(),
            ..Default::default()
        };
        let req = dpb::CreateDisputeRequest { dispute: Some(dispute), request_id: request_id(&["dispute", &d.key]) };
        let id = disputes.create_dispute(req).await?.into_inner().dispute.unwrap_or_default().id;
        for (i, e) in d.events.iter().enumerate() {
            let key = request_id(&["dispute", &d.key, "event", &i.to_string()]);
            match &e.to_stage {
                Some(stage) => {
                    let to_stage = enum_value(&format!("DISPUTE_STAGE_{stage}"), |n| {
                        dpb::DisputeStage::from_str_name(n).map(Into::into)
                    })?;
                    let req = dpb::AdvanceDisputeRequest {
                        id: id.clone(),
                        to_stage,
                        occurred_on: e.on.clone(),
                        note: e.note.clone(),
                        request_id: key,
                        etag: String::new(),
                    };
                    disputes.advance_dispute(req).await?;
                }
                None => {
                    let event = dpb::DisputeEvent {
                        kind: dpb::DisputeEventKind::Note.into(),
                        occurred_on: e.on.clone(),
                        description: e.note.clone(),
                        ..Default::default()
                    };
                    let req =
                        dpb::RecordDisputeEventRequest { dispute_id: id.clone(), event: Some(event), request_id: key };
                    disputes.record_dispute_event(req).await?;
                }
            }
            loaded.events += 1;
        }
        dispute_ids.insert(d.key.clone(), id);
        loaded.disputes += 1;
    }

    for s in &data.sessions {
        let agenda = s
            .agenda
            .iter()
            .map(|a| {
                Ok(lpb::AgendaItem {
                    topic: a.topic.clone(),
                    dispute_ids: resolve(&dispute_ids, &a.dispute_keys, "dispute")?,
                    measure_ids: resolve(&measure_ids, &a.measure_keys, "measure")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let session = lpb::DialogueSession {
            title: s.title.clone(),
            track: enum_value(&format!("DIALOGUE_TRACK_{}", s.track), |n| {
                lpb::DialogueTrack::from_str_name(n).map(Into::into)
            })?,
            level: enum_value(&format!("SESSION_LEVEL_{}", s.level), |n| {
                lpb::SessionLevel::from_str_name(n).map(Into::into)
            })?,
            host_economy: s.host_economy.clone(),
            economies: s.economies.clone(),
            location: s.location.clone(),
            starts_on: s.starts_on.clone(),
            ends_on: s.ends_on.clone(),
            status: enum_value(&format!("SESSION_STATUS_{}", s.status), |n| {
                lpb::SessionStatus::from_str_name(n).map(Into::into)
            })?,
            participants: s
                .participants
                .iter()
                .map(|p| lpb::Participant {
                    name: p.name.clone(),
                    role: p.role.clone(),
                    organization: p.organization.clone(),
                    economy: p.economy.clone(),
                })
                .collect(),
            agenda,
            outcome_summary: s.outcome_summary.clone(),
            source_url: s.source_url.clone(),
            ..Default::default()
        };
        let req = lpb::CreateSessionRequest { session: Some(session), request_id: request_id(&["session", &s.key]) };
        let session_id = dialogue.create_session(req).await?.into_inner().session.unwrap_or_default().id;
        loaded.sessions += 1;
        for (i, c) in s.commitments.iter().enumerate() {
            let effect = match &c.effect {
                Some(e) => enum_value(&format!("COMMITMENT_EFFECT_{e}"), |n| {
                    lpb::CommitmentEffect::from_str_name(n).map(Into::into)
                })?,
                None => lpb::CommitmentEffect::None.into(),
            };
            let commitment = lpb::Commitment {
                description: c.description.clone(),
                owner_economies: c.owner_economies.clone(),
                due_on: c.due_on.clone(),
                dispute_id: c
                    .dispute_key
                    .as_ref()
                    .map(|k| resolve(&dispute_ids, std::slice::from_ref(k), "dispute"))
                    .transpose()?
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or_default(),
                measure_id: c
                    .measure_key
                    .as_ref()
                    .map(|k| resolve(&measure_ids, std::slice::from_ref(k), "measure"))
                    .transpose()?
                    .and_then(|v| v.into_iter().next())
                    .unwrap_or_default(),
                effect,
                effective_on: c.effect_on.clone(),
                ..Default::default()
            };
            let n = i.to_string();
            let req = lpb::AddCommitmentRequest {
                session_id: session_id.clone(),
                commitment: Some(commitment),
                request_id: request_id(&["session", &s.key, "commitment", &n]),
            };
            let id = dialogue.add_commitment(req).await?.into_inner().commitment.unwrap_or_default().id;
            if c.status != "OPEN" {
                let status = enum_value(&format!("COMMITMENT_STATUS_{}", c.status), |n| {
                    lpb::CommitmentStatus::from_str_name(n).map(Into::into)
                })?;
                let req = lpb::SetCommitmentStatusRequest {
                    id,
                    status,
                    request_id: request_id(&["session", &s.key, "commitment", &n, "status"]),
                    ..Default::default()
                };
                dialogue.set_commitment_status(req).await?;
            }
            loaded.commitments += 1;
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dataset_parses_and_every_key_resolves() -> anyhow::Result<()> {
        let data = Dataset::load()?;
        assert_eq!((data.measures.len(), data.disputes.len(), data.sessions.len()), (13, 3, 5));
        let commitments: usize = data.sessions.iter().map(|s| s.commitments.len()).sum();
        assert_eq!(commitments, 8);
        let ds636 = data.disputes.iter().find(|d| d.key == "ds636").map(|d| d.note.as_str()).unwrap_or_default();
        assert!(ds636.starts_with("Third parties reserved") && ds636.contains("Legal basis summarised"), "{ds636}");
        let measures: Vec<_> = data.measures.iter().map(|m| m.key.clone()).collect();
        let disputes: Vec<_> = data.disputes.iter().map(|d| d.key.clone()).collect();
        for d in &data.disputes {
            assert!(d.measure_keys.iter().all(|k| measures.contains(k)), "{}", d.key);
        }
        for s in &data.sessions {
            for a in &s.agenda {
                assert!(
                    a.measure_keys.iter().all(|k| measures.contains(k))
                        && a.dispute_keys.iter().all(|k| disputes.contains(k)),
                    "{}",
                    s.key
                );
            }
        }
        assert!(data.measures.iter().all(|m| !m.source_url.is_empty()), "every record keeps its source");
        assert!(!data.flows.is_empty(), "the dataset carries trade figures");
        for f in &data.flows {
            assert!(f.source_url.starts_with("https://"), "{} keeps its source", f.key);
            let hit = data.measures.iter().any(|m| {
                m.imposing_economy == f.importing_economy
                    && (m.target_economies.is_empty() || m.target_economies.contains(&f.exporting_economy))
                    && m.hs_codes.iter().any(|c| f.hs_code.starts_with(c.as_str()) || c.starts_with(f.hs_code.as_str()))
            });
            assert!(hit, "{} is on a line a measure of the dataset hits", f.key);
        }
        Ok(())
    }

    #[test]
    fn request_ids_are_stable_uuids() {
        assert_eq!(request_id(&["measure", "a"]), request_id(&["measure", "a"]));
        assert_ne!(request_id(&["measure", "a"]), request_id(&["measure", "b"]));
        assert!(uuid::Uuid::parse_str(&request_id(&["x"])).is_ok());
    }
}
