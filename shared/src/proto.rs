//! Code generated from `proto/`, and the descriptor set reflection serves.

#![allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod tradewatch {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("tradewatch.common.v1");
        }
    }
    pub mod tariff {
        pub mod v1 {
            tonic::include_proto!("tradewatch.tariff.v1");
        }
    }
    pub mod dispute {
        pub mod v1 {
            tonic::include_proto!("tradewatch.dispute.v1");
        }
    }
    pub mod dialogue {
        pub mod v1 {
            tonic::include_proto!("tradewatch.dialogue.v1");
        }
    }
    pub mod relations {
        pub mod v1 {
            tonic::include_proto!("tradewatch.relations.v1");
        }
    }
}

pub use tradewatch::{
    common::v1 as common, dialogue::v1 as dialogue, dispute::v1 as dispute, relations::v1 as relations,
    tariff::v1 as tariff,
};

/// Every Tradewatch proto file, encoded as a `FileDescriptorSet`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tradewatch_descriptor.bin"));

/// Whether `path` (`/tradewatch.tariff.v1.TariffService/GetMeasure`) names
/// an RPC of the Tradewatch services.
pub fn is_method(path: &str) -> bool {
    use std::{collections::HashSet, sync::OnceLock};
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    METHODS
        .get_or_init(|| {
            use prost::Message as _;
            let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
            set.file
                .iter()
                .flat_map(|f| {
                    f.service.iter().flat_map(move |s| {
                        s.method.iter().map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
                    })
                })
                .collect()
        })
        .contains(path)
}
