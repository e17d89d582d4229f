"""Registry settings edited in a real browser (Debian's chromium driven by
Playwright): the scanning configuration, the replication rules and repository
creation templates (create, edit, delete). Bad input shows the message the ECR API
gives for the same input (asked of the AWS CLI here); every change is checked
through the AWS CLI. A user who may only read them finds the Save buttons
disabled, and when one is forced, the server refuses and nothing changes.

usage: console_settings.py URL ROOT_KEY ROOT_SECRET VIEWER_KEY VIEWER_SECRET SCREENSHOT_DIR
VIEWER has ReadOnly and may read (not change) the registry settings.
Elements are found by accessible names (labels, roles, button text).
"""

import json
import os
import re
import subprocess
import sys

from playwright.sync_api import expect, sync_playwright

(url, root_key, root_secret, viewer_key, viewer_secret, shots) = sys.argv[1:7]
os.makedirs(shots, exist_ok=True)


def aws(*args, key=root_key, secret=root_secret):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    env.pop("AWS_PROFILE", None)
    return subprocess.run(["aws", *args, "--endpoint-url", url, "--region", "us-east-1", "--output", "json"],
                          env=env, capture_output=True, text=True)


def aws_ok(*args):
    r = aws(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout) if r.stdout.strip() else None


def api_message(*args):
    """The message of the error the AWS CLI gets for this call."""
    r = aws(*args)
    assert r.returncode != 0, f"aws {args} unexpectedly succeeded"
    m = re.search(r"operation: (.*)", r.stderr)
    assert m, r.stderr
    return m.group(1).strip()


def section(page, heading_id):
    return page.locator(f"section[aria-labelledby={heading_id}]")


def sign_in(page, key, secret):
    page.goto(url + "/console/sign-in")
    page.get_by_label("Access key ID").fill(key)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Private repositories")).to_be_visible()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("dialog", lambda d: d.accept())
    sign_in(page, root_key, root_secret)
    page.get_by_role("link", name="Registry settings").click()

    # Scanning configuration: a frequency BASIC does not allow is the API's error.
    want = api_message("ecr", "put-registry-scanning-configuration", "--scan-type", "BASIC", "--rules",
                       json.dumps([{"scanFrequency": "CONTINUOUS_SCAN",
                                    "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]))
    page.get_by_label("Scan type", exact=True).select_option("BASIC")
    page.get_by_label("Rule 1 scan frequency").select_option("CONTINUOUS_SCAN")
    page.get_by_label("Rule 1 repository filters").fill("*")
    page.get_by_role("button", name="Save scanning configuration").click()
    expect(section(page, "scanning").get_by_role("alert")).to_contain_text(want)
    # The form keeps what was sent.
    expect(page.get_by_label("Rule 1 repository filters")).to_have_value("*")
    assert aws_ok("ecr", "get-registry-scanning-configuration")["scanningConfiguration"]["rules"] == []
    page.get_by_label("Scan type", exact=True).select_option("ENHANCED")
    page.get_by_label("Rule 1 scan frequency").select_option("SCAN_ON_PUSH")
    page.get_by_label("Rule 1 repository filters").fill("prod-*, team/*")
    page.get_by_label("Rule 2 scan frequency").select_option("CONTINUOUS_SCAN")
    page.get_by_label("Rule 2 repository filters").fill("*")
    page.get_by_role("button", name="Save scanning configuration").click()
    expect(section(page, "scanning").get_by_role("status")).to_contain_text("Scanning configuration saved.")
    cfg = aws_ok("ecr", "get-registry-scanning-configuration")["scanningConfiguration"]
    assert cfg["scanType"] == "ENHANCED", cfg
    assert cfg["rules"] == [
        {"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [
            {"filter": "prod-*", "filterType": "WILDCARD"}, {"filter": "team/*", "filterType": "WILDCARD"}]},
        {"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]},
    ], cfg
    expect(page.get_by_label("Rule 1 repository filters")).to_have_value("prod-*, team/*")
    shot_scanning = section(page, "scanning")
    shot_scanning.screenshot(path=os.path.join(shots, "settings-scanning.png"))

    # Replication: a region that is neither this one nor a peer is the API's error.
    want = api_message("ecr", "put-replication-configuration", "--replication-configuration",
                       json.dumps({"rules": [{"destinations": [{"region": "eu-nowhere-1", "registryId": "210987654321"}]}]}))
    page.get_by_label("Rule 1 destinations").fill("eu-nowhere-1/210987654321")
    page.get_by_role("button", name="Save replication rules").click()
    expect(section(page, "replication").get_by_role("alert")).to_contain_text(want)
    assert aws_ok("ecr", "describe-registry")["replicationConfiguration"]["rules"] == []
    page.get_by_label("Rule 1 destinations").fill("us-east-1/210987654321")
    page.get_by_label("Rule 1 repository prefix filters").fill("team")
    page.get_by_label("Rule 1 replicates deletions").check()
    page.get_by_role("button", name="Save replication rules").click()
    expect(section(page, "replication").get_by_role("status")).to_contain_text("Replication rules saved.")
    # A second rule in the empty row the page now offers.
    page.get_by_label("Rule 2 destinations").fill("us-east-1/345678901234, us-east-1/456789012345")
    page.get_by_role("button", name="Save replication rules").click()
    expect(section(page, "replication").get_by_role("status")).to_contain_text("Replication rules saved.")
    # (AWS CLI v1's model predates deleteReplication and drops it from its output:
    # the caller checks it on the raw API answer, the page shows it.)
    rules = [{k: v for k, v in r.items() if k != "deleteReplication"}
             for r in aws_ok("ecr", "describe-registry")["replicationConfiguration"]["rules"]]
    assert rules == [
        {"destinations": [{"region": "us-east-1", "registryId": "210987654321"}],
         "repositoryFilters": [{"filter": "team", "filterType": "PREFIX_MATCH"}]},
        {"destinations": [{"region": "us-east-1", "registryId": "345678901234"},
                          {"region": "us-east-1", "registryId": "456789012345"}]},
    ], rules
    expect(section(page, "replication").get_by_role("cell", name="Enabled")).to_be_visible()
    # Emptying a rule's destinations removes it.
    page.get_by_label("Rule 2 destinations").fill("")
    page.get_by_role("button", name="Save replication rules").click()
    expect(section(page, "replication").get_by_role("status")).to_contain_text("Replication rules saved.")
    rules = aws_ok("ecr", "describe-registry")["replicationConfiguration"]["rules"]
    assert [d["registryId"] for d in rules[0]["destinations"]] == ["210987654321"] and len(rules) == 1, rules
    expect(page.get_by_label("Rule 1 replicates deletions")).to_be_checked()
    section(page, "replication").screenshot(path=os.path.join(shots, "settings-replication.png"))

    # Repository creation templates: a bad lifecycle policy is the API's error.
    bad_lifecycle = '{"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any"}}]}'
    want = api_message("ecr", "create-repository-creation-template", "--prefix", "team", "--applied-for", "CREATE_ON_PUSH",
                       "--lifecycle-policy", bad_lifecycle)
    page.get_by_label("Prefix (a repository").fill("team")
    page.get_by_label("Template description").fill("Team repositories")
    page.get_by_label("Create on push").check()
    page.get_by_label("Replication", exact=True).check()
    page.get_by_label("Image tag mutability").select_option("IMMUTABLE")
    section(page, "templates").get_by_label("AWS KMS").check()
    page.get_by_label("Resource tags").fill("owner=platform")
    page.get_by_label("Template lifecycle policy JSON").fill(bad_lifecycle)
    page.get_by_role("button", name="Create creation template").click()
    expect(section(page, "templates").get_by_role("alert")).to_contain_text(want)
    assert aws_ok("ecr", "describe-repository-creation-templates")["repositoryCreationTemplates"] == []
    expect(page.get_by_label("Template description")).to_have_value("Team repositories")
    good_lifecycle = json.dumps({"rules": [{"rulePriority": 1, "description": "keep 5", "selection": {
        "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]})
    page.get_by_label("Template lifecycle policy JSON").fill(good_lifecycle)
    page.get_by_role("button", name="Create creation template").click()
    expect(section(page, "templates").get_by_role("status")).to_contain_text("Repository creation template created.")
    t = aws_ok("ecr", "describe-repository-creation-templates")["repositoryCreationTemplates"]
    assert len(t) == 1, t
    t = t[0]
    assert t["prefix"] == "team" and t["description"] == "Team repositories", t
    assert sorted(t["appliedFor"]) == ["CREATE_ON_PUSH", "REPLICATION"], t
    assert t["imageTagMutability"] == "IMMUTABLE" and t["encryptionConfiguration"]["encryptionType"] == "KMS", t
    assert t["resourceTags"] == [{"Key": "owner", "Value": "platform"}], t
    assert json.loads(t["lifecyclePolicy"])["rules"][0]["description"] == "keep 5", t
    # Edit: the form is filled from the stored template.
    page.get_by_role("link", name="Edit creation template team").click()
    expect(page.get_by_role("heading", name="Edit creation template team")).to_be_visible()
    expect(page.get_by_label("Template description")).to_have_value("Team repositories")
    expect(page.get_by_label("Create on push")).to_be_checked()
    page.get_by_label("Template description").fill("Team repositories, mutable")
    page.get_by_label("Image tag mutability").select_option("MUTABLE_WITH_EXCLUSION")
    page.get_by_label("Template tag exclusion filters").fill("latest")
    page.get_by_label("Template lifecycle policy JSON").fill("")
    section(page, "templates").screenshot(path=os.path.join(shots, "settings-templates.png"))
    page.get_by_role("button", name="Save creation template").click()
    expect(section(page, "templates").get_by_role("status")).to_contain_text("Repository creation template saved.")
    t = aws_ok("ecr", "describe-repository-creation-templates")["repositoryCreationTemplates"][0]
    assert t["description"] == "Team repositories, mutable" and t["imageTagMutability"] == "MUTABLE_WITH_EXCLUSION", t
    assert t["imageTagMutabilityExclusionFilters"] == [{"filter": "latest", "filterType": "WILDCARD"}], t
    assert "lifecyclePolicy" not in t, t
    # Delete.
    page.get_by_role("button", name="Delete creation template team").click()
    expect(section(page, "templates").get_by_role("status")).to_contain_text("Repository creation template deleted.")
    assert aws_ok("ecr", "describe-repository-creation-templates")["repositoryCreationTemplates"] == []
    page.get_by_role("button", name="Sign out").click()

    # A user who may read the settings but not change them: the controls are
    # disabled, and when one is forced the server refuses and nothing changes.
    sign_in(page, viewer_key, viewer_secret)
    page.get_by_role("link", name="Registry settings").click()
    for name in ["Save scanning configuration", "Save replication rules", "Create creation template"]:
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    page.get_by_label("Rule 1 destinations").fill("us-east-1/567890123456")
    page.get_by_role("button", name="Save replication rules").evaluate("b => b.removeAttribute('disabled')")
    page.get_by_role("button", name="Save replication rules").click()
    expect(section(page, "replication").get_by_role("alert")).to_contain_text("AccessDeniedException")
    expect(section(page, "replication").get_by_role("alert")).to_contain_text("ecr:PutReplicationConfiguration")
    rules = aws_ok("ecr", "describe-registry")["replicationConfiguration"]["rules"]
    assert len(rules) == 1 and rules[0]["destinations"][0]["registryId"] == "210987654321", rules
    page.get_by_role("button", name="Save scanning configuration").evaluate("b => b.removeAttribute('disabled')")
    page.get_by_label("Scan type", exact=True).select_option("BASIC")
    page.get_by_role("button", name="Save scanning configuration").click()
    expect(section(page, "scanning").get_by_role("alert")).to_contain_text("AccessDeniedException")
    assert aws_ok("ecr", "get-registry-scanning-configuration")["scanningConfiguration"]["scanType"] == "ENHANCED"
    browser.close()
print("console settings: ok")
