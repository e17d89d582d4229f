//! A minimal ECR control-plane client: AWS JSON 1.1 requests signed with SigV4
//! (header form), written independently of berth's verifier so each checks the
//! other. Used to mint registry tokens (`GetAuthorizationToken`) for the data plane.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;

use crate::http::{Http, Response};

/// The root access key every test server is started with (unless overridden).
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const TEST_REGION: &str = "us-east-1";

/// AWS credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Credentials {
    /// The key printed by `berth admin access-key create` (its
    /// `aws_access_key_id = …` and `aws_secret_access_key = …` lines).
    #[track_caller]
    pub fn from_admin_output(out: &str) -> Self {
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k)?.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {k} in {out}"))
        };
        Credentials {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b))
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
        .as_ref()
        .to_vec()
}

/// `(YYYYMMDD'T'HHMMSS'Z', YYYYMMDD)` for a Unix time.
pub fn amz_date(unix: i64) -> (String, String) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    (time, date)
}

/// Signs and sends an AWS JSON 1.1 call (`target` like
/// `AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken`) to `/`.
pub fn call(
    http: &Http,
    host: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    target: &str,
    body: &serde_json::Value,
) -> Response {
    call_with_headers(http, host, creds, region, service, target, body, &[])
}

/// [`call`] with `extra` headers sent unsigned beside the signed ones (as berth's
/// replication sends `X-Berth-Replicated-From`).
#[allow(clippy::too_many_arguments)]
pub fn call_with_headers(
    http: &Http,
    host: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    target: &str,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Response {
    let body = serde_json::to_vec(body).expect("json");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let (amz, date) = amz_date(now);
    let ct = "application/x-amz-json-1.1";
    let signed = "content-type;host;x-amz-date;x-amz-target";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{ct}\nhost:{host}\nx-amz-date:{amz}\nx-amz-target:{target}\n\n{signed}\n{}",
        sha256_hex(&body)
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let sig = hex::encode(hmac(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
        creds.access_key_id
    );
    let mut headers = vec![
        ("Content-Type", ct),
        ("X-Amz-Date", amz.as_str()),
        ("X-Amz-Target", target),
        ("Authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    http.clone().anonymous().send("POST", "/", &headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0).0, "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160).0, "20150830T123600Z");
        assert_eq!(amz_date(951_782_400).1, "20000229");
    }
}
