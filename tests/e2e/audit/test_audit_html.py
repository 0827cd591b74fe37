"""The HTML report of `smtpkit audit --html FILE`, loaded in a real headless
Chromium: tables, the failing dialogues, severity colours, and a server's
hostile text shown as text, never run."""

import subprocess

import pytest
from brokensmtp import BrokenServer
from browser import Browser, browser_available

pytestmark = pytest.mark.skipif(not browser_available(),
                                reason="needs chromium, chromium-driver, python3-selenium")


def test_html_report_in_chromium(smtpkit_bin, tmp_path):
    srv = BrokenServer()
    srv.greeting = b"220 <script>document.title='pwned'</script> <b>broken</b>\r\n"
    srv.start()
    html = tmp_path / "report.html"
    try:
        r = subprocess.run([smtpkit_bin, "audit", "--rate", "100", "--timeout", "5",
                            "--html", str(html), f"127.0.0.1:{srv.port}"],
                           capture_output=True, timeout=120)
    finally:
        srv.stop()
    assert r.returncode == 2, r.stderr
    text = html.read_text()
    assert "<script>" not in text and "http://" not in text and "https://" not in text
    from selenium.webdriver.common.by import By
    b = Browser()
    try:
        b.driver.get(html.as_uri())
        d = b.driver
        assert d.title.startswith("smtpkit audit of 127.0.0.1:")
        assert "pwned" not in d.title
        # the greeting is shown as text, markup and all
        assert d.find_element(By.ID, "greeting").text.startswith(
            "220 <script>document.title='pwned'</script> <b>broken</b>")
        assert d.find_elements(By.CSS_SELECTOR, "#greeting b") == []
        assert d.find_element(By.ID, "verdict").text == "MUST failures."
        # the summary table: one row per severity with numbers
        rows = d.find_elements(By.CSS_SELECTOR, "#summary tr")
        assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows[1:]] == \
            ["MUST", "SHOULD", "best practice"]
        must_failed = int(rows[1].find_elements(By.TAG_NAME, "td")[2].text)
        assert must_failed >= 5
        # every check has a row; a failure is red and links to its dialogue
        row = d.find_element(By.ID, "check-rcpt-before-mail")
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[0].text == "FAIL"
        assert cells[3].text == "RFC 5321 3.3"
        assert cells[0].value_of_css_property("background-color") == "rgba(242, 222, 222, 1)"
        badge = cells[1].find_element(By.CSS_SELECTOR, ".sev")
        assert badge.text == "MUST"
        assert badge.value_of_css_property("background-color") == "rgba(201, 48, 44, 1)"
        should = d.find_element(By.CSS_SELECTOR, "#check-unknown-command .sev")
        assert should.value_of_css_property("background-color") == "rgba(236, 151, 31, 1)"
        link = cells[2].find_element(By.TAG_NAME, "a")
        assert link.get_attribute("href").endswith("#fail-rcpt-before-mail")
        fail = d.find_element(By.ID, "fail-rcpt-before-mail")
        dialogue = fail.find_element(By.CSS_SELECTOR, "pre.dialogue").text
        assert "C: RCPT TO:<postmaster>" in dialogue and "S: 250 OK" in dialogue
        assert "503" in fail.text
        passed = d.find_element(By.ID, "check-noop").find_element(By.TAG_NAME, "td")
        assert passed.text == "PASS"
        assert passed.value_of_css_property("background-color") == "rgba(223, 240, 216, 1)"
        d.save_screenshot("/tmp/audit-report.png")
    finally:
        b.close()
