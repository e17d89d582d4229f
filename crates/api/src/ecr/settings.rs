//! Account settings: `GetAccountSetting` / `PutAccountSetting` (botocore ECR model).
//! The names, values and defaults are the core's (`AccountFlag`); a known name
//! always reads, as its default when never put.

use berth_registry::AccountFlag;
use serde_json::{json, Value};

use super::input::check_len;
use super::{Ctx, EcrError, Input};

fn flag(input: &Input) -> Result<AccountFlag, EcrError> {
    let name = input.req_str("name")?;
    check_len("name", name, 1, 64)?;
    AccountFlag::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = AccountFlag::ALL.iter().map(|f| f.name()).collect();
        EcrError::invalid(format!(
            "Invalid parameter at 'name' failed to satisfy constraint: 'Account setting name must be one of [{}]'",
            known.join(", ")
        ))
    })
}

async fn authorize(ctx: &Ctx) -> Result<String, EcrError> {
    let account = ctx.caller.account_id.clone();
    ctx.app
        .authorize(&ctx.caller, &ctx.action, &account, None, None)
        .await?;
    Ok(account)
}

pub async fn get_account_setting(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let f = flag(input)?;
    let value = ctx.app.registry.account_flag(&account, f).await?;
    Ok(json!({ "name": f.name(), "value": value }))
}

pub async fn put_account_setting(ctx: &Ctx, input: &Input) -> Result<Value, EcrError> {
    let account = authorize(ctx).await?;
    let f = flag(input)?;
    let value = input.req_str("value")?;
    check_len("value", value, 1, 64)?;
    if !f.values().contains(&value) {
        return Err(EcrError::invalid(format!(
            "Invalid parameter at 'value' failed to satisfy constraint: 'Account setting value for {} must be one of [{}]'",
            f.name(),
            f.values().join(", ")
        )));
    }
    ctx.app
        .registry
        .put_account_flag(&account, f, value)
        .await?;
    Ok(json!({ "name": f.name(), "value": value }))
}
