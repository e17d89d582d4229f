//! CloudTrail `LookupEvents` over the audit log (`X-Amz-Target:
//! com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`), the
//! subset `aws cloudtrail lookup-events` uses: one `LookupAttributes` entry of
//! `EventName`, `Username` or `ResourceName`; `StartTime`/`EndTime` (epoch
//! seconds); `MaxResults` (1–50, default 50) and `NextToken`. Records of the
//! caller's account only, newest first, authorized as `cloudtrail:LookupEvents`.

use berth_registry::events::AuditFilter;
use serde_json::{json, Value};

use super::{Ctx, EcrError, EcrException, Input};

fn time_of(input: &Input, name: &str) -> Result<Option<i64>, EcrError> {
    match input.raw().get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|f| (f * 1000.0) as i64)),
        Some(Value::String(s)) => berth_iam::time::parse_iso8601(s)
            .map(|t| Some(t * 1000))
            .map_err(|_| {
                EcrError::new(
                    EcrException::InvalidTimeRange,
                    format!("{name} is not a time"),
                )
            }),
        Some(_) => Err(EcrError::new(
            EcrException::InvalidTimeRange,
            format!("{name} is not a time"),
        )),
    }
}

pub async fn lookup_events(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = ctx.caller.account_id.clone();
    let resource = format!("arn:aws:cloudtrail:{}:{account}:*", ctx.app.config.region);
    crate::policy::authorize(
        &ctx.app,
        &ctx.caller,
        &ctx.action,
        &account,
        &resource,
        None,
    )
    .await?;
    let mut f = AuditFilter {
        start_ms: time_of(input, "StartTime")?.unwrap_or(0),
        end_ms: time_of(input, "EndTime")?.unwrap_or(i64::MAX),
        before_id: i64::MAX,
        action_like: String::new(),
        principal_like: String::new(),
        principal_exact: String::new(),
        resource: String::new(),
    };
    if f.start_ms > f.end_ms {
        return Err(EcrError::new(
            EcrException::InvalidTimeRange,
            "StartTime is after EndTime",
        ));
    }
    let attrs = input
        .opt_array("LookupAttributes")?
        .cloned()
        .unwrap_or_default();
    if attrs.len() > 1 {
        return Err(EcrError::new(
            EcrException::InvalidLookupAttributes,
            "only one lookup attribute may be given",
        ));
    }
    for a in &attrs {
        let key = a.get("AttributeKey").and_then(Value::as_str).unwrap_or("");
        let value = a
            .get("AttributeValue")
            .and_then(Value::as_str)
            .unwrap_or("");
        if value.is_empty() || value.contains(['%', '_']) {
            return Err(EcrError::new(
                EcrException::InvalidLookupAttributes,
                "AttributeValue must be a non-empty name",
            ));
        }
        match key {
            "EventName" => f.action_like = format!("%:{value}"),
            "Username" => {
                f.principal_like = format!("%/{value}");
                if value == "root" {
                    f.principal_exact = format!("arn:aws:iam::{account}:root");
                }
            }
            "ResourceName" => f.resource = value.to_string(),
            k => {
                return Err(EcrError::new(
                    EcrException::InvalidLookupAttributes,
                    format!(
                        "berth answers lookups by EventName, Username or ResourceName, not {k:?}"
                    ),
                ))
            }
        }
    }
    let max = match input.opt_i64("MaxResults")? {
        None => 50,
        Some(n) if (1..=50).contains(&n) => n,
        Some(_) => {
            return Err(EcrError::new(
                EcrException::InvalidMaxResults,
                "MaxResults must be between 1 and 50",
            ))
        }
    };
    if let Some(t) = input.opt_str("NextToken")? {
        f.before_id =
            t.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                EcrError::new(EcrException::InvalidNextToken, "invalid NextToken")
            })?;
    }
    let rows = ctx.app.registry.lookup_audit(&account, &f, max + 1).await?;
    let more = rows.len() as i64 > max;
    let mut events = Vec::new();
    let mut last_id = 0;
    for (id, r) in rows.into_iter().take(max as usize) {
        last_id = id;
        let (service, name) = r.action.split_once(':').unwrap_or(("berth", &r.action));
        let principal = r.principal.clone().unwrap_or_default();
        let username = if principal.ends_with(":root") {
            "root".to_string()
        } else {
            principal.rsplit('/').next().unwrap_or("").to_string()
        };
        let source = format!("{service}.amazonaws.com");
        let time = r.ts as f64 / 1000.0;
        let trail = json!({
            "eventVersion": "1.08",
            "userIdentity": {"arn": principal, "accountId": r.account_id},
            "eventTime": berth_iam::time::format_iso8601(r.ts.div_euclid(1000)),
            "eventSource": source,
            "eventName": name,
            "awsRegion": ctx.app.config.region,
            "sourceIPAddress": r.source,
            "errorCode": if r.outcome == "Success" || r.outcome == "ok" { Value::Null } else { json!(r.outcome) },
            "eventID": id.to_string(),
            "recipientAccountId": r.account_id,
        });
        let mut e = json!({
            "EventId": id.to_string(),
            "EventName": name,
            "ReadOnly": if name.starts_with("Describe") || name.starts_with("List") || name.starts_with("Get") || name.starts_with("BatchGet") { "true" } else { "false" },
            "EventTime": time,
            "EventSource": source,
            "Username": username,
            "CloudTrailEvent": trail.to_string(),
        });
        if let Some(res) = &r.resource {
            let ty = if service == "kms" {
                "AWS::KMS::Key"
            } else {
                "AWS::ECR::Repository"
            };
            e["Resources"] = json!([{"ResourceType": ty, "ResourceName": res}]);
        }
        events.push(e);
    }
    let mut out = json!({ "Events": events });
    if more {
        out["NextToken"] = json!(last_id.to_string());
    }
    Ok(out)
}
