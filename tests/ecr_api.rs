//! Held-out-style scenario checks of the ECR control plane with boto3: runs
//! `tests/py/ecr_api_checks.py` against a real `berth serve`. The script validates
//! every implemented operation's answers against botocore's ECR model (output shapes,
//! JSON types, enums, limits, modeled error names and ECR's messages) and fails with
//! the list of discrepancies.

use std::process::Command;

use berth_testsupport::server::workspace_root;
use berth_testsupport::tools::{require_python_module, run};
use berth_testsupport::{both_backends, Berth};

both_backends! {
    fn ecr_api_checks(backend) {
        require_python_module("boto3", "pip install boto3");
        // The script's replication destinations name `us-west-2`: a configured peer.
        let dir = berth_testsupport::TempDir::new("berth-ecr-api");
        let cfg = dir.join("berth.toml");
        std::fs::write(
            &cfg,
            "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"http://127.0.0.1:9\"\n\
             access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\nsecret_access_key = \"unused\"\n",
        )
        .unwrap();
        let berth = Berth::options(backend)
            .env("BERTH_CONFIG", cfg.to_str().unwrap())
            .start();
        let creds = berth.root_credentials();
        let script = workspace_root().join("tests/py/ecr_api_checks.py");
        let out = run(Command::new("python3")
            .arg(&script)
            .arg(berth.url())
            .arg(&creds.access_key_id)
            .arg(&creds.secret_access_key)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_ECR")
            .env_remove("AWS_ENDPOINT_URL_STS"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "ecr_api_checks.py failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
            out.status,
            berth.stderr_tail(40)
        );
        // Keep the summary visible in the test output.
        if let Some(summary) = stdout.lines().rev().find(|l| l.contains(" checks; ")) {
            println!("{summary}");
        }
    }
}
