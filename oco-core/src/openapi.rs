//! OpenAPI schemas (feature `openapi`) of the types whose JSON is not what a derive would
//! describe: those serialised as their text (`Display`), and [`Payload`] (`serde(into)`).
//!
//! The other model types derive `utoipa::ToSchema`, which reads the same serde attributes
//! (renames, tags, `flatten`, `skip_serializing_if`) that shape their JSON; fields whose JSON
//! another module writes (durations in seconds, time zones, addresses) say so with
//! `#[schema(value_type = …)]` beside their `#[serde(with = …)]`.

use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::constraint::{IpRanges, TimeFrames};
use crate::model::{MacAddress, Name, Origin, Payload, Priority, Sha256Digest, SuccessCodes};

/// A string schema with a description, an example and optionally a pattern.
fn text(description: &str, example: &str, pattern: Option<&str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .examples([example])
        .pattern(pattern)
}

/// Implements `ToSchema` (named after the type) for a type whose `PartialSchema` is given.
macro_rules! named {
    ($($type:ty),*) => {
        $(impl ToSchema for $type {})*
    };
}

named!(
    Name,
    MacAddress,
    Sha256Digest,
    SuccessCodes,
    Origin,
    IpRanges,
    TimeFrames,
    Priority,
    Payload
);

impl PartialSchema for Name {
    fn schema() -> RefOr<Schema> {
        text(
            "A name: one line, not blank, without surrounding white space, at most 255 characters, \
             no control or bidirectional formatting characters.",
            "Firefox",
            None,
        )
        .min_length(Some(1))
        .max_length(Some(Name::MAX_CHARS))
        .into()
    }
}

impl PartialSchema for MacAddress {
    fn schema() -> RefOr<Schema> {
        text(
            "A MAC address, six bytes in lower-case hexadecimal separated by colons.",
            "00:1a:2b:3c:4d:5e",
            Some("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"),
        )
        .into()
    }
}

impl PartialSchema for Sha256Digest {
    fn schema() -> RefOr<Schema> {
        text(
            "A SHA-256 digest: 64 lower-case hexadecimal digits.",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            Some("^[0-9a-f]{64}$"),
        )
        .into()
    }
}

impl PartialSchema for SuccessCodes {
    fn schema() -> RefOr<Schema> {
        text(
            "The return codes that count as success, in canonical form: comma-separated \
             integers and inclusive ranges (`0, 3010`, `-5--1`), or `*` for every code.",
            "0, 3010",
            None,
        )
        .min_length(Some(1))
        .into()
    }
}

impl PartialSchema for Origin {
    fn schema() -> RefOr<Schema> {
        text(
            "The container or deployment rule a job belongs to: `container:<id>` or `rule:<id>`.",
            "container:1",
            Some("^(container|rule):-?[0-9]+$"),
        )
        .into()
    }
}

impl PartialSchema for IpRanges {
    fn schema() -> RefOr<Schema> {
        text(
            "The agent addresses a policy allows, in canonical form: comma-separated entries, \
             each an address or network (IPv4 or IPv6), `!` before an entry denies it; the \
             first entry that contains the address decides. Empty: every address.",
            "!10.66.0.0/16, 10.0.0.0/8",
            None,
        )
        .into()
    }
}

impl PartialSchema for TimeFrames {
    fn schema() -> RefOr<Schema> {
        text(
            "The local times at which a policy allows delivery, in canonical form: \
             comma-separated entries of days and times (`MON-FRI 18:00-06:00`), `!` before an \
             entry denies it; read in the policy's time zone. Empty: always.",
            "MON-FRI 18:00-06:00, SAT-SUN",
            None,
        )
        .into()
    }
}

impl PartialSchema for Priority {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .description(Some("A delivery priority; higher is delivered first."))
            .minimum(Some(Priority::MIN))
            .maximum(Some(Priority::MAX))
            .into()
    }
}

impl PartialSchema for Payload {
    fn schema() -> RefOr<Schema> {
        let object = |description: &str, size: ObjectBuilder, sha256: RefOr<Schema>| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(description))
                .property("size", size)
                .required("size")
                .property("sha256", sha256)
                .required("sha256")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        OneOfBuilder::new()
            .description(Some(
                "A package's stored payload archive: its length in bytes and SHA-256 digest, both \
                 `null` for a payload stored before the server kept them.",
            ))
            .item(object(
                "A payload of known length and digest.",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0)),
                Sha256Digest::schema(),
            ))
            .item(object(
                "A payload stored before the server kept lengths and digests.",
                null(),
                null().into(),
            ))
            .into()
    }
}
