//! Contracts: the Avro schemas in schemas/ that say what a source's events must look like.
//! [`diff`] compares two record schemas field by field; [`json`] checks a JSON document against
//! a contract; [`compatible`] asks apache-avro whether the contract (as reader) can read a
//! writer schema.

pub mod diff;
pub mod json;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use std::path::{Path, PathBuf};

/// A loaded contract.
#[derive(Debug, Clone)]
pub struct Contract {
    /// The path as the topology names it (relative to `schemas.dir`).
    pub name: String,
    pub schema: Schema,
}

impl Contract {
    pub fn load(schemas_dir: &Path, name: &str) -> Result<Contract, String> {
        let path: PathBuf = schemas_dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read contract `{}`: {e}", path.display()))?;
        let schema = Schema::parse_str(&text).map_err(|e| {
            format!(
                "contract `{}` is not a valid Avro schema: {e}",
                path.display()
            )
        })?;
        if !matches!(schema, Schema::Record(_)) {
            return Err(format!(
                "contract `{}` must be an Avro record",
                path.display()
            ));
        }
        Ok(Contract {
            name: name.to_string(),
            schema,
        })
    }
}

/// A record schema named `R` with these fields (a test helper for the contract modules).
#[cfg(test)]
pub(crate) fn test_record(fields: &str) -> Schema {
    Schema::parse_str(&format!(
        r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
    ))
    .unwrap()
}

/// Can a consumer holding `reader` (the contract) read data written with `writer`? `Ok(())` or
/// the reasons it cannot.
pub fn compatible(writer: &Schema, reader: &Schema) -> Result<(), Vec<String>> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(_) => Ok(()),
        Err(e) => Err(vec![e.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::contracts::test_record as s;

    #[test]
    fn an_added_optional_field_is_compatible_and_a_changed_type_is_not() {
        let contract = s(r#"{"name":"id","type":"string"}"#);
        let v2 = s(
            r#"{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}"#,
        );
        let v3 = s(r#"{"name":"id","type":"long"}"#);
        assert_eq!(compatible(&v2, &contract), Ok(()));
        assert!(compatible(&v3, &contract).is_err());
    }
}
