"""The console in a real browser: headless Chromium (Debian) driven by Selenium.

Logs in, filters, opens a subject report, and checks an entry's receipt *in the browser*
(verify.js: Web Crypto SHA-256 and Ed25519); a console server that flips one bit of the proof
shows red. verify.js's RFC 9162 code is also run over the transparency-dev probes and over
proofs made by the Python ledger. With ``CONSOLE_SCREENSHOTS=1`` each page is saved to
``docs/console/*.png``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.demo import delivery_request
from ledger import merkle
from partner_gateway.v1 import share_pb2_grpc
from tests.console.conftest import Rig

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs the selenium package")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.expected_conditions import staleness_of  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "rfc9162-merkle"
if not VECTORS.is_dir():
    VECTORS = Path("/work/shared/testdata/rfc9162-merkle")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium at a laptop's window size, with the Debian driver (no downloads)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=en-US"):
        options.add_argument(arg)
    options.add_argument("--window-size=1366,900")
    driver = webdriver.Chrome(
        service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options
    )
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: Any, name: str) -> None:
    """Save a full-page screenshot when CONSOLE_SCREENSHOTS=1."""
    if os.environ.get("CONSOLE_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, min(max(height, 700), 2600))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1366, 900)


def login(driver: Any, base: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    button = driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button")
    button.click()
    WebDriverWait(driver, 10).until(staleness_of(button))  # the answer page has loaded


def verdict(driver: Any) -> Any:
    """The verdict element once verify.js has decided (ok or failed)."""
    WebDriverWait(driver, 10).until(
        lambda d: d.find_element(By.ID, "verdict").get_attribute("class") != "verdict pending"
    )
    return driver.find_element(By.ID, "verdict")


def test_auditor_logs_in_and_sees_the_overview(browser: Any, rig: Rig) -> None:
    """A wrong token shows the refusal; the auditor's token opens the overview."""
    login(browser, rig.url, rig.service_token)
    assert "not a valid auditor token" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    shot(browser, "login")
    before = rig.gw.gateway.ledger.size
    login(browser, rig.url, rig.auditor_token)
    size = int(browser.find_element(By.ID, "ledger-size").text)
    # Refused calls without an identity are counted and flushed to the ledger in the
    # background (RefusalCounter), so the size may grow while the page loads.
    assert before <= size <= rig.gw.gateway.ledger.size
    revision = browser.find_element(By.ID, "policy-revision").text
    assert revision == rig.gw.gateway.engine.revision
    shot(browser, "overview")


def test_filtering_by_decision_and_reason_shows_only_those_refusals(browser: Any, rig: Rig) -> None:
    """Choosing DENY and reason R2 lists only R2 refusals."""
    browser.get(rig.url + "/disclosures")
    shot(browser, "disclosures")
    Select(browser.find_element(By.ID, "f-decision")).select_by_visible_text("DENY")
    browser.find_element(By.ID, "f-reason").send_keys("R2")
    apply = browser.find_element(By.ID, "apply")
    apply.click()
    WebDriverWait(browser, 10).until(staleness_of(apply))
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert rows
    for row in rows:
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[2] == "DENY" and "R2." in cells[9]
    assert "u1001" not in browser.current_url
    shot(browser, "disclosures-filtered")


def test_subject_report_lists_the_recipients(browser: Any, rig: Rig) -> None:
    """The subject report for u1001 names adco and logiship, reached by keyboard only."""
    browser.get(rig.url + "/subject")
    field = browser.find_element(By.ID, "subject")
    field.send_keys("u1001\n")  # Enter submits: no mouse needed
    WebDriverWait(browser, 10).until(staleness_of(field))
    assert browser.find_element(By.ID, "recipients").text == "adco, logiship"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#subject-table tbody tr")) == 2
    shot(browser, "subject-report")


def test_refusals_and_charts_render_svg(browser: Any, rig: Rig) -> None:
    """Refusals and charts pages draw server-side SVG with per-bar titles."""
    browser.get(rig.url + "/refusals")
    assert int(browser.find_element(By.ID, "refusal-total").text) > 0
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect title")
    shot(browser, "refusals")
    browser.get(rig.url + "/charts")
    assert int(browser.find_element(By.ID, "disclosure-total").text) > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
    shot(browser, "charts")


def test_entry_proof_verifies_in_the_browser(browser: Any, rig: Rig) -> None:
    """With the auditor's key entered, verify.js checks signature and proof: green."""
    index = rig.gw.gateway.ledger.size - 3
    browser.get(f"{rig.url}/entry/{index}")
    assert "pending" in browser.find_element(By.ID, "verdict").get_attribute("class")
    browser.find_element(By.ID, "vkey").clear()
    browser.find_element(By.ID, "vkey").send_keys(rig.vkey)
    browser.find_element(By.ID, "verify-btn").click()
    v = verdict(browser)
    assert v.get_attribute("class") == "verdict ok", v.text
    assert f"entry {index} is in the log" in v.text
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps li.ok")
    assert len(steps) == 5 and "remembered" in steps[4].text
    verified = json.loads(browser.find_element(By.ID, "verified-entry").text)
    assert verified["index"] == index
    shot(browser, "entry-verified")


def test_a_grown_log_is_checked_consistent_with_the_remembered_checkpoint(
    browser: Any, rig: Rig
) -> None:
    """After new shares, the next entry's checkpoint is proven to extend the remembered one."""
    share = share_pb2_grpc.ShareServiceStub(rig.gw.channel("service", "checkout"))
    share.Share(delivery_request())
    newest = rig.gw.gateway.ledger.size - 1
    browser.get(f"{rig.url}/entry/{newest}")
    v = verdict(browser)
    assert v.get_attribute("class") == "verdict ok", v.text
    last = browser.find_elements(By.CSS_SELECTOR, "#steps li")[-1]
    assert last.text.startswith("consistency: consistent with the tree of size")


def test_a_forked_history_shows_red(browser: Any, rig: Rig) -> None:
    """A checkpoint this browser saw before with another root (a split view) fails step 5."""
    origin = rig.gw.gateway.ledger.origin
    size = rig.gw.gateway.ledger.size
    browser.get(f"{rig.url}/entry/1")
    verdict(browser)
    for seen in ({"size": str(size), "root": "00" * 32}, {"size": "3", "root": "11" * 32}):
        browser.execute_script(
            "localStorage.setItem(arguments[0], arguments[1])",
            f"share-gateway.console.checkpoint:{origin}",
            json.dumps(seen),
        )
        browser.get(f"{rig.url}/entry/1")
        v = verdict(browser)
        assert v.get_attribute("class") == "verdict failed" and "consistency" in v.text, v.text
    browser.execute_script("localStorage.clear()")


def test_a_different_key_fails(browser: Any, rig: Rig) -> None:
    """A key that did not sign the checkpoint turns the verdict red (key kept per browser)."""
    from ledger.checkpoint import NoteSigner

    browser.get(f"{rig.url}/entry/1")
    browser.find_element(By.ID, "vkey").send_keys(rig.vkey)
    browser.find_element(By.ID, "verify-btn").click()
    assert verdict(browser).get_attribute("class") == "verdict ok"
    browser.get(f"{rig.url}/entry/1")
    assert verdict(browser).get_attribute("class") == "verdict ok"  # the key is remembered
    other = NoteSigner.generate(rig.gw.gateway.ledger.origin).vkey
    browser.find_element(By.ID, "vkey").clear()
    browser.find_element(By.ID, "vkey").send_keys(other)
    browser.find_element(By.ID, "verify-btn").click()
    v = verdict(browser)
    assert v.get_attribute("class") == "verdict failed" and "checkpoint signature" in v.text
    browser.find_element(By.ID, "vkey").clear()
    browser.find_element(By.ID, "vkey").send_keys(rig.vkey)
    browser.find_element(By.ID, "verify-btn").click()


def test_a_tampering_console_server_shows_red(browser: Any, rig: Rig) -> None:
    """A console that flips one proof bit cannot make the browser say 'verified'."""
    login(browser, rig.tampering_url, rig.auditor_token)
    browser.get(f"{rig.tampering_url}/entry/1")
    browser.find_element(By.ID, "vkey").send_keys(rig.vkey)
    browser.find_element(By.ID, "verify-btn").click()
    v = verdict(browser)
    assert v.get_attribute("class") == "verdict failed"
    assert "inclusion proof" in v.text and "does not match the root" in v.text
    assert browser.find_element(By.ID, "verified-entry").text == ""
    shot(browser, "entry-tampered")


class _Nodes(dict[tuple[int, int], bytes]):
    def get_many(self, ids: Any) -> dict[tuple[int, int], bytes]:
        """A ``merkle.NodeReader``: the stored hashes of the asked-for subtrees."""
        return {i: self[i] for i in ids if i in self}


def _python_cases(n: int = 20) -> list[dict[str, Any]]:
    """Inclusion proofs for every leaf of trees of 1..n leaves and consistency proofs between
    every two sizes, made by ledger.merkle; each also with a one-bit-wrong root that must fail."""
    leaves = [merkle.leaf_hash(f"e{i}".encode()) for i in range(n)]
    nodes = _Nodes({(0, i): h for i, h in enumerate(leaves)})
    for lvl, idx, h in merkle.Frontier().extend(leaves):
        nodes[(lvl, idx)] = h
    roots = [merkle.root_from_leaves(leaves[:size]) for size in range(n + 1)]

    def flip(h: bytes) -> str:
        return (bytes([h[0] ^ 1]) + h[1:]).hex()

    cases: list[dict[str, Any]] = []
    for size in range(1, n + 1):
        for index in range(size):
            proof = [p.hex() for p in merkle.inclusion_proof(index, size, nodes.get_many)]
            case = {"index": str(index), "size": str(size), "leaf": leaves[index].hex()}
            cases.append({**case, "proof": proof, "root": roots[size].hex(), "ok": True})
            cases.append({**case, "proof": proof, "root": flip(roots[size]), "ok": False})
        for old in range(1, size + 1):
            proof = [p.hex() for p in merkle.consistency_proof(old, size, nodes.get_many)]
            case = {"size1": str(old), "size2": str(size), "root2": roots[size].hex()}
            cases.append({**case, "proof": proof, "root1": roots[old].hex(), "ok": True})
            cases.append({**case, "proof": proof, "root1": flip(roots[old]), "ok": False})
    return cases


def _probe_cases() -> list[dict[str, Any]]:
    """The transparency-dev RFC 9162 probes, inclusion and consistency (as tests/ledger)."""

    def h(s: str | None) -> str:
        return base64.b64decode(s).hex() if s else ""

    out = []
    for path in sorted(VECTORS.rglob("*.json")):
        p = json.loads(path.read_text())
        case = {
            "name": str(path.relative_to(VECTORS)),
            "proof": [h(x) for x in p.get("proof") or []],
            "ok": not p["wantErr"],
        }
        if "leafIdx" in p:
            case |= {
                "index": str(p["leafIdx"]),
                "size": str(p["treeSize"]),
                "leaf": h(p["leafHash"]),
                "root": h(p["root"]),
            }
        else:
            case |= {
                "size1": str(p["size1"]),
                "size2": str(p["size2"]),
                "root1": h(p["root1"]),
                "root2": h(p["root2"]),
            }
        out.append(case)
    return out


_RUN_CASES = """
const [cases, done] = arguments;
(async () => {
  const V = globalThis.ConsoleVerify, wrong = [];
  for (const c of cases) {
    let ok = true, why = "accepted";
    try {
      if (c.size1 === undefined) {
        await V.verifyInclusion(BigInt(c.index), BigInt(c.size), V.fromHex(c.leaf),
                                c.proof.map(V.fromHex), V.fromHex(c.root));
      } else {
        await V.verifyConsistency(BigInt(c.size1), BigInt(c.size2), V.fromHex(c.root1),
                                  V.fromHex(c.root2), c.proof.map(V.fromHex));
      }
    } catch (e) { ok = false; why = e.message; }
    if (ok !== c.ok) wrong.push(`${c.name || c.index + "/" + c.size}: ${why}`);
  }
  done({ran: cases.length, wrong});
})().catch((e) => done({ran: 0, wrong: [String(e)]}));
"""


def test_verify_js_agrees_with_the_python_ledger_and_the_rfc_probes(browser: Any, rig: Rig) -> None:
    """verify.js accepts every valid inclusion and consistency proof and rejects every bad
    one, as ledger.verify does."""
    login(browser, rig.url, rig.auditor_token)
    browser.get(f"{rig.url}/entry/0")
    cases = _python_cases()
    probes = _probe_cases()
    if not probes:
        pytest.skip(f"RFC 9162 probes not found at {VECTORS}")  # pragma: no cover
    result = browser.execute_async_script(_RUN_CASES, cases + probes)
    assert result["wrong"] == [] and result["ran"] == len(cases) + len(probes)
    assert len(probes) == 196
