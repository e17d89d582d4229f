"""The web console in a real browser (Debian's chromium driven by Playwright):
sign in, create the user's repository (scan on push, KMS, immutable), view the push
commands and run them with the AWS CLI and skopeo, see the image with its scan status,
the findings of a scanned image sorted by severity, a ReadOnly user who cannot delete
(and whom the server refuses anyway), CSRF refusal, sign-out.

usage: console_browser.py URL ROOT_KEY ROOT_SECRET READER_KEY READER_SECRET OCI_SOURCE SCAN_DIGEST SCREENSHOT_DIR
Elements are found by accessible names (labels, roles, button text).
"""

import os
import re
import subprocess
import sys
import tempfile

from playwright.sync_api import expect, sync_playwright

(url, root_key, root_secret, reader_key, reader_secret, oci_source, scan_digest, shots) = sys.argv[1:9]
os.makedirs(shots, exist_ok=True)


def shot(page, name, full_page=True):
    page.screenshot(path=os.path.join(shots, name + ".png"), full_page=full_page)


def sign_in(page, key, secret):
    page.goto(url + "/console/")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.get_by_label("Access key ID").fill(key)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Private repositories")).to_be_visible()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.on("dialog", lambda d: d.accept())

    # A wrong secret is refused on the page.
    page.goto(url + "/console/sign-in")
    shot(page, "sign-in")
    page.get_by_label("Access key ID").fill(root_key)
    page.get_by_label("Secret access key").fill("wrong-secret-wrong-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")

    sign_in(page, root_key, root_secret)

    # Create repository: scan on push, KMS (the default key), immutable.
    page.get_by_role("button", name="Create repository").click()
    page.get_by_label("Repository name").fill("Bad Name")
    page.get_by_role("button", name="Create repository").click()
    expect(page.get_by_role("alert")).to_contain_text("lowercase")
    page.get_by_label("Repository name").fill("team/app")
    page.get_by_label("Tag immutability").select_option("IMMUTABLE")
    page.get_by_label("Scan on push").check()
    page.get_by_label("AWS KMS").check()
    page.get_by_label("Tags (one").fill("team=platform")
    shot(page, "create-repository")
    page.get_by_role("button", name="Create repository").click()

    # View push commands, then run the skopeo variant.
    expect(page.get_by_role("status")).to_contain_text("Successfully created repository team/app")
    expect(page.get_by_role("heading", name="skopeo")).to_be_visible()
    shot(page, "push-commands")
    commands = [c.inner_text() for c in page.locator("section[aria-labelledby=cmd-skopeo] code").all()]
    login = next(c for c in commands if "skopeo login" in c)
    copy = next(c for c in commands if c.startswith("skopeo copy"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID=root_key, AWS_SECRET_ACCESS_KEY=root_secret,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               REGISTRY_AUTH_FILE=os.path.join(tempfile.mkdtemp(), "auth.json"))
    env.pop("AWS_PROFILE", None)
    subprocess.run(["sh", "-c", login], env=env, check=True)
    args = [oci_source if a.startswith("oci-archive:") else a for a in copy.split()]
    subprocess.run(args, env=env, check=True)

    page.get_by_role("link", name="Repositories", exact=True).click()
    row = page.get_by_role("row").filter(has_text="team/app")
    expect(row).to_contain_text("IMMUTABLE")
    expect(row).to_contain_text("KMS")
    expect(row).to_contain_text("Enabled")
    shot(page, "repositories")
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("img", name="Storage used per repository")).to_be_visible()
    expect(page.get_by_role("img", name="Pushes and pulls per day")).to_be_visible()
    shot(page, "overview")
    page.get_by_role("link", name="Repositories", exact=True).click()
    row = page.get_by_role("row").filter(has_text="team/app")

    # The pushed image appears with its scan status (scan on push).
    row.get_by_role("link", name="team/app").click()
    expect(page.get_by_role("heading", name="Images")).to_be_visible()
    img = page.get_by_role("row").filter(has_text="latest")
    for _ in range(60):
        if "COMPLETE" in img.inner_text():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(img).to_contain_text("COMPLETE")

    # A scanned image with findings: its detail, most severe first, then re-sorted.
    page.goto(url + "/console/images?name=scan%2Fapp")
    expect(page.get_by_role("row").filter(has_text="v1")).to_contain_text("critical 1")
    shot(page, "images")
    page.get_by_role("link", name="v1").click()
    expect(page.get_by_role("heading", name="Vulnerabilities")).to_be_visible()
    first = page.locator("table").last.get_by_role("row").nth(1)
    expect(first).to_contain_text("CRITICAL")
    expect(first.get_by_role("link", name="GHSA-xvch-5gv4-984h")).to_be_visible()
    page.get_by_role("heading", name="Vulnerabilities").scroll_into_view_if_needed()
    shot(page, "image-detail", full_page=False)
    page.get_by_role("link", name="Severity").click()
    expect(page.locator("table").last.get_by_role("row").nth(1)).not_to_contain_text("CRITICAL")

    # Image detail also lists referrers and the replication status.
    expect(page.get_by_role("heading", name="Referrers")).to_be_visible()
    expect(page.get_by_role("heading", name="Replication status")).to_be_visible()

    # Repository -> Tags: each tag with the digest it names, Delete per tag.
    page.goto(url + "/console/images?name=scan%2Fapp")
    page.get_by_role("navigation", name="Repository").get_by_role("link", name="Tags").click()
    expect(page.get_by_role("heading", name="Tags")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="v1")).to_contain_text("sha256:")
    expect(page.get_by_role("button", name="Delete tag v1")).to_be_enabled()
    shot(page, "tags")

    # Lifecycle policy: build a rule, test it (the preview), save it.
    page.goto(url + "/console/lifecycle?name=scan%2Fapp")
    page.get_by_label("Lifecycle policy JSON").fill("{not json")
    page.get_by_role("button", name="Test rules").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Lifecycle policy JSON").fill('{"rules": []}')
    page.get_by_label("Rule priority").fill("1")
    page.get_by_label("Rule description").fill("keep one image")
    page.get_by_label("Image status").select_option("any")
    page.get_by_label("Match criteria").select_option("imageCountMoreThan")
    page.get_by_label("Count number").fill("1")
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_label("Lifecycle policy JSON")).to_have_value(re.compile("imageCountMoreThan"))
    page.get_by_role("button", name="Test rules").click()
    expect(page.get_by_role("status")).to_contain_text("1 image(s) would expire")
    expect(page.get_by_role("row").filter(has_text="v1")).to_contain_text("EXPIRE")
    shot(page, "lifecycle-policy")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Lifecycle policy saved")

    # CSRF: a post without the session's token is refused.
    r = page.request.post(url + "/console/repositories/delete", form={"name": "team/app", "force": "true"})
    assert r.status == 403, r.status

    # Sign out.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to berth")).to_be_visible()
    page.goto(url + "/console/repositories")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))

    # ReadOnly: Delete disabled; the server refuses the request anyway.
    sign_in(page, reader_key, reader_secret)
    row = page.get_by_role("row").filter(has_text="team/app")
    expect(row.get_by_role("button", name="Delete team/app")).to_be_disabled()
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    r = page.request.post(url + "/console/repositories/delete",
                          form={"csrf": csrf, "name": "team/app", "force": "true"})
    assert r.status == 403, r.status
    assert "AccessDeniedException" in r.text()
    # ReadOnly does not grant reading pull through cache rules or creation
    # templates: those sections say which permission is missing; the page works.
    page.get_by_role("link", name="Registry settings").click()
    expect(page.get_by_role("heading", name="Private registry settings")).to_be_visible()
    for heading, action in [("ptc", "ecr:DescribePullThroughCacheRules"),
                            ("templates", "ecr:DescribeRepositoryCreationTemplates")]:
        note = page.locator(f"section[aria-labelledby={heading}]").get_by_role("note")
        expect(note).to_contain_text(f"needs the {action} permission")
        expect(note).to_contain_text("AmazonEC2ContainerRegistryReadOnly does not include it")
    expect(page.get_by_role("heading", name="KMS keys")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot(page, "settings-readonly")
    browser.close()

print("console browser checks passed")
