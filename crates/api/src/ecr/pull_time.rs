//! Pull-time update exclusions: `RegisterPullTimeUpdateExclusion`,
//! `DeregisterPullTimeUpdateExclusion`, `ListPullTimeUpdateExclusions` (botocore
//! ECR model). Pulls by an excluded principal do not update `lastRecordedPullTime`
//! (`crates/api/src/oci.rs`, the manifest read).

use berth_registry::MAX_PULL_TIME_EXCLUSIONS;
use serde_json::{json, Value};

use super::input::page_after;
use super::{epoch_secs, Ctx, EcrError, EcrException, Input};

/// `^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*$`, ≤ 200.
fn valid_principal(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(":iam::") else {
        return false;
    };
    let partition_ok = partition.is_empty()
        || (partition.starts_with('-')
            && partition[1..]
                .split('-')
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())));
    let Some((account, path)) = rest.split_once(':') else {
        return false;
    };
    let Some(names) = path
        .strip_prefix("role/")
        .or_else(|| path.strip_prefix("user/"))
    else {
        return false;
    };
    arn.len() <= 200
        && partition_ok
        && berth_iam::arn::is_account_id(account)
        && names.split('/').all(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
        })
}

fn principal(input: &Input) -> Result<String, EcrError> {
    let arn = input.req_str("principalArn")?;
    if !valid_principal(arn) {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'principalArn' failed to satisfy constraint: 'must be the ARN of an IAM user or role' (got '{arn}')"
        )));
    }
    Ok(arn.to_string())
}

async fn authorize(ctx: &Ctx) -> Result<String, EcrError> {
    let account = ctx.caller.account_id.clone();
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &account, None, None)
        .await?;
    Ok(account)
}

pub async fn register_pull_time_update_exclusion(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let arn = principal(input)?;
    if ctx.app.registry.pull_time_exclusions(&account).await?.len() >= MAX_PULL_TIME_EXCLUSIONS {
        return Err(EcrError::new(
            EcrException::LimitExceeded,
            format!("A registry can have at most {MAX_PULL_TIME_EXCLUSIONS} pull-time update exclusions"),
        ));
    }
    let created = ctx
        .app
        .registry
        .register_pull_time_exclusion(&account, &arn)
        .await?
        .ok_or_else(|| {
            EcrError::new(
                EcrException::ExclusionAlreadyExists,
                format!("The principal '{arn}' is already excluded from pull-time updates"),
            )
        })?;
    Ok(json!({"principalArn": arn, "createdAt": epoch_secs(created)}))
}

pub async fn deregister_pull_time_update_exclusion(
    ctx: &Ctx,
    input: &Input,
) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let arn = principal(input)?;
    if !ctx
        .app
        .registry
        .deregister_pull_time_exclusion(&account, &arn)
        .await?
    {
        return Err(EcrError::new(
            EcrException::ExclusionNotFound,
            format!("The principal '{arn}' is not excluded from pull-time updates"),
        ));
    }
    Ok(json!({"principalArn": arn}))
}

pub async fn list_pull_time_update_exclusions(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let all: Vec<String> = ctx
        .app
        .registry
        .pull_time_exclusions(&account)
        .await?
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    let (page, next) = page_after(input, &all, |a: &String| a, |_| true, 1000, 100)?;
    let mut v = json!({ "pullTimeUpdateExclusions": page });
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::valid_principal;

    #[test]
    fn principal_arns() {
        for ok in [
            "arn:aws:iam::123456789012:user/scanner",
            "arn:aws:iam::123456789012:role/path/to/scanner",
            "arn:aws-cn:iam::123456789012:role/r",
        ] {
            assert!(valid_principal(ok), "{ok}");
        }
        for bad in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::12345:user/x",
            "arn:aws:sts::123456789012:assumed-role/r/s",
            "arn:aws:iam::123456789012:user/",
            "arn:aws:iam::123456789012:group/g",
        ] {
            assert!(!valid_principal(bad), "{bad}");
        }
    }
}
