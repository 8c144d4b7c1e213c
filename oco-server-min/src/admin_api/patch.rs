//! `PATCH` bodies as JSON merge patches (RFC 7386), one mechanism for every resource.
//!
//! A resource's editable form is the body that creates it (`ComputerInput`, `SettingsInput`,
//! …). An edit renders the stored resource in that form, merges the patch into it, and decodes
//! the result with the same type a create uses, so that a patch changes exactly the members it
//! names, at any depth: `{"policy": {"priority": 5}}` changes the priority and leaves the rest of
//! the policy as it was. Arrays are replaced whole, as RFC 7386 says.
//!
//! `null` clears a member. RFC 7386 removes it from the document; here it stays in the merged
//! document as `null`, and the input types read `null` as the value a create gives the field
//! when it is left out (empty text and lists, the defaults of a nested object, no end, the
//! server's time zone), except `post_action_timeout`, whose `null` is a value of its own (post
//! actions disabled) and is what a `GET` shows for it. A field a create requires (a name, a
//! hostname, a group) cannot be `null`: 400 naming it.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use super::extract::Body;

/// A `PATCH` body: a JSON object (anything else is a 400).
#[derive(Debug, Clone, Default)]
pub(crate) struct Patch(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Patch {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(value) = Body::<Value>::from_request(request, state).await?;
        match value {
            Value::Object(members) => Ok(Patch(members)),
            other => Err(ApiError::malformed(
                None,
                format!(
                    "a PATCH body is a JSON object of the fields to change, not {}",
                    kind(&other)
                ),
            )),
        }
    }
}

impl Patch {
    /// `current` (a resource in its editable form) with the patch merged into it.
    ///
    /// # Errors
    ///
    /// 400 naming the field for a value of the wrong type, an unknown field, or `null` on a
    /// required field; 500 if `current` does not serialise (it always does: the input types
    /// are plain data).
    pub(crate) fn apply<T: Serialize + DeserializeOwned>(self, current: &T) -> ApiResult<T> {
        let mut document = serde_json::to_value(current)
            .map_err(|error| ApiError::internal("rendering a resource to patch", &error))?;
        merge(&mut document, Value::Object(self.0));
        decode(document)
    }
}

/// Merges `patch` into `target` as RFC 7386 does, except that `null` members are kept as `null`
/// instead of being removed (see the module's documentation).
pub(crate) fn merge(target: &mut Value, patch: Value) {
    let Value::Object(members) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (name, value) in members {
            if value.is_object() {
                merge(target.entry(name).or_insert(Value::Null), value);
            } else {
                target.insert(name, value);
            }
        }
    }
}

/// For fields a create may leave out: `null` reads as the type's default, as absence does.
pub(crate) fn null_is_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes a merged document; a `null` where a value is required is said so.
fn decode<T: DeserializeOwned>(document: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        if message.starts_with("invalid type: null") {
            ApiError::invalid(path, "is required and cannot be null")
        } else {
            ApiError::malformed(Some(path), message)
        }
    })
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_members_merge_and_the_rest_stays() {
        let mut doc = json!({"name": "a", "policy": {"priority": 0, "ip_ranges": "10.0.0.0/8"},
                             "macs": ["x", "y"]});
        merge(
            &mut doc,
            json!({"policy": {"priority": 5}, "macs": ["z"], "notes": null}),
        );
        assert_eq!(
            doc,
            json!({"name": "a", "policy": {"priority": 5, "ip_ranges": "10.0.0.0/8"},
                   "macs": ["z"], "notes": null})
        );
        let mut doc = json!({"policy": null});
        merge(&mut doc, json!({"policy": {"priority": 1}}));
        assert_eq!(doc, json!({"policy": {"priority": 1}}));
    }

    /// A JSON value a few levels deep.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        prop::collection::btree_map("[a-d]", value(), 0..4).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// An empty patch changes nothing.
        #[test]
        fn the_empty_patch_is_the_identity(doc in object()) {
            let mut merged = Value::Object(doc.clone());
            merge(&mut merged, json!({}));
            prop_assert_eq!(merged, Value::Object(doc));
        }

        /// A patch of one member that is not an object sets that member and leaves every other.
        #[test]
        fn one_member_changes_only_itself(doc in object(), name in "[a-e]", new in value()) {
            prop_assume!(!new.is_object());
            let mut merged = Value::Object(doc.clone());
            merge(&mut merged, json!({ name.clone(): new.clone() }));
            let merged = merged.as_object().unwrap().clone();
            prop_assert_eq!(merged.get(&name), Some(&new));
            for (other, value) in &doc {
                if *other != name {
                    prop_assert_eq!(merged.get(other), Some(value));
                }
            }
            prop_assert!(merged.keys().all(|k| *k == name || doc.contains_key(k)));
        }

        /// Merging a document's own members into it changes nothing.
        #[test]
        fn a_document_patched_with_itself_is_itself(doc in object()) {
            let mut merged = Value::Object(doc.clone());
            merge(&mut merged, Value::Object(doc.clone()));
            prop_assert_eq!(merged, Value::Object(doc));
        }
    }
}
