//! Targets over the ECR, KMS and Secrets Manager JSON inputs (`crates/ecr-input`):
//! the request body as the front end reads it, then every member checker and
//! document validator of the operations that carry one.

use berth_ecr_input::{
    decode_token, encode_token, filters, kms, parse_digest, pull_through, registry_config, secrets,
    tags, templates, Input,
};
use serde_json::{json, Value};

/// Member names the ECR operations read (botocore `ecr/2015-09-21/service-2.json`).
const MEMBERS: &[&str] = &[
    "registryId",
    "repositoryName",
    "repositoryNames",
    "imageIds",
    "imageTag",
    "imageDigest",
    "imageManifest",
    "imageManifestMediaType",
    "imageTagMutability",
    "nextToken",
    "maxResults",
    "filter",
    "tags",
    "tagKeys",
    "resourceArn",
    "layerDigests",
    "uploadId",
    "partFirstByte",
    "partLastByte",
    "layerPartBlob",
    "force",
    "policyText",
    "lifecyclePolicyText",
    "encryptionConfiguration",
    "imageScanningConfiguration",
    "acceptedMediaTypes",
    "name",
    "value",
    "prefix",
    "description",
];

fn input_of(data: &[u8]) -> Option<Input> {
    Input::from_body(data).ok()
}

/// Any operation's body: parsed as the dispatcher does, then every typed accessor
/// over every member name; a pagination token that decodes re-encodes to itself.
pub fn ecr_input(data: &[u8]) {
    let Some(input) = input_of(data) else {
        return;
    };
    for m in MEMBERS {
        let _ = input.opt_str(m);
        let _ = input.req_str(m);
        let _ = input.opt_bool(m);
        let _ = input.opt_i64(m);
        let _ = input.opt_array(m);
        let _ = input.opt_object(m);
        let _ = input.opt_len(m, 1, 256);
    }
    let _ = input.repository_name();
    let _ = input.max_results(1000, 100);
    if let Ok(Some(t)) = input.opt_str("nextToken") {
        if let Ok(last) = decode_token(t) {
            assert_eq!(
                decode_token(&encode_token(&last)).as_deref(),
                Ok(last.as_str())
            );
        }
    }
    if let Ok(Some(ids)) = input.opt_array("imageIds") {
        for id in ids {
            if let Some(d) = id.get("imageDigest").and_then(Value::as_str) {
                let _ = parse_digest(d, "imageDigest");
            }
        }
    }
    if let Ok(t) = input.opt_array("tags") {
        if let Ok(parsed) = tags::parse_tags(t) {
            assert!(parsed.len() <= tags::MAX_TAGS);
        }
    }
}

/// `PutReplicationConfiguration` and `PutRegistryScanningConfiguration`: what a
/// document validates to validates again to itself.
pub fn ecr_registry_config(data: &[u8]) {
    let Some(input) = input_of(data) else {
        return;
    };
    let same_registry = |region: &str, reg: &str| {
        if region == "us-east-1" && reg == "123456789012" {
            Err(berth_ecr_input::InputError::invalid("same registry"))
        } else {
            Ok(())
        }
    };
    if let Ok(cfg) = registry_config::replication_configuration(&input, same_registry) {
        let again = Input::new(json!({ "replicationConfiguration": cfg.clone() }));
        let twice = registry_config::replication_configuration(&again, same_registry);
        assert_eq!(
            twice.as_ref(),
            Ok(&cfg),
            "a stored replication configuration re-validates"
        );
    }
    if let Ok(cfg) = registry_config::scanning_configuration(&input) {
        let again = Input::new(cfg.clone());
        assert_eq!(
            registry_config::scanning_configuration(&again).as_ref(),
            Ok(&cfg),
            "a stored scanning configuration re-validates"
        );
    }
    for (ty, min) in [("PREFIX_MATCH", 0), ("WILDCARD", 1)] {
        let _ = filters::repository_filters(input.get("repositoryFilters"), ty, 100, min);
    }
}

/// `Create|Update|ValidatePullThroughCacheRule` members, and upstream URLs line by
/// line.
pub fn ecr_pull_through(data: &[u8]) {
    for line in String::from_utf8_lossy(data).lines() {
        let ok = pull_through::valid_url(line);
        let _ = pull_through::infer_kind(line);
        let _ = pull_through::valid_credential_arn(line);
        let _ = templates::valid_prefix(line);
        if ok {
            assert!(!line.is_empty());
        }
    }
    let Some(input) = input_of(data) else {
        return;
    };
    let _ = pull_through::ecr_prefix(&input);
    let _ = pull_through::prefix_field(&input, "upstreamRepositoryPrefix");
    let _ = pull_through::credential_arn(&input);
    let _ = pull_through::role_arn(&input);
    if let Ok(Some(u)) = input.opt_str("upstreamRegistryUrl") {
        if pull_through::valid_url(u) {
            let _ = pull_through::infer_kind(u);
        }
    }
}

/// `Create|UpdateRepositoryCreationTemplate` members: the prefix, both policies
/// (parsed), the resource tags.
pub fn ecr_templates(data: &[u8]) {
    let Some(input) = input_of(data) else {
        return;
    };
    if let Ok(p) = templates::prefix(&input) {
        assert!(templates::valid_prefix(&p));
    }
    let _ = templates::repository_policy(&input);
    let _ = templates::lifecycle_policy(&input);
    if let Ok(t) = input.opt_array("resourceTags") {
        let _ = tags::parse_tags(t);
    }
}

/// Secrets Manager request bodies (`CreateSecret`, `PutSecretValue`, `ListSecrets`,
/// `TagResource`, …).
pub fn secrets_manager(data: &[u8]) {
    let Some(input) = input_of(data) else {
        return;
    };
    let _ = secrets::secret_name(&input, "Name");
    let _ = secrets::secret_id(&input);
    if let Ok(Some(t)) = secrets::client_token(&input) {
        assert!((32..=64).contains(&t.chars().count()));
    }
    if let Ok(Some(v)) = secrets::value_in(&input) {
        let len = match &v {
            secrets::SecretValueIn::Text(t) => t.len(),
            secrets::SecretValueIn::Binary(b) => b.len(),
        };
        assert!(len <= 65536);
    }
    if let Ok(Some(list)) = input.opt_array("Tags") {
        if let Ok(t) = secrets::tags_in(list) {
            assert!(t.len() <= 50);
        }
    }
    let _ = secrets::filters_in(&input);
}

/// KMS request bodies: tags and alias names.
pub fn kms_inputs(data: &[u8]) {
    let Some(input) = input_of(data) else {
        return;
    };
    let _ = kms::tags_in(&input);
    if let Ok(a) = kms::alias_name(&input) {
        assert!(a.starts_with("alias/") && !a.starts_with("alias/aws/"));
    }
}
