"""`smtpkit web`: the seed's online checker as a local page, tested in a real
headless Chromium (selenium) against a real `smtpkit serve` started here:
the form, the 220 greeting, with "Advanced Output" the EHLO capabilities
with their explanations, the audit report; and the limits that keep it
from being an open proxy."""

import socket
import subprocess
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from browser import Browser, browser_available


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Web:
    def __init__(self, smtpkit_bin, *args):
        self.port = free_port()
        self.proc = subprocess.Popen([smtpkit_bin, "web", "--listen", f"127.0.0.1:{self.port}",
                                      "--timeout", "5", "--helo", "client.test", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtpkit web did not start")

    def url(self, path="/", **q):
        return f"http://127.0.0.1:{self.port}{path}" + ("?" + urlencode(q) if q else "")

    def get(self, path="/", **q):
        try:
            with urllib.request.urlopen(self.url(path, **q), timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


@pytest.fixture
def web(smtpkit_bin):
    started = []

    def make(*args):
        w = Web(smtpkit_bin, *args)
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


@pytest.mark.skipif(not browser_available(),
                    reason="needs chromium, chromium-driver, python3-selenium")
def test_checker_page_in_chromium(tls_server, web):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    def submit(button):
        """Click and wait for the new page (its result)."""
        old = d.find_element(By.TAG_NAME, "html")
        d.find_element(By.ID, button).click()
        WebDriverWait(d, 90).until(EC.staleness_of(old))
        WebDriverWait(d, 90).until(EC.presence_of_element_located((By.ID, "result")))
    srv = tls_server()
    w = web("--allow-port", str(srv.port), "--per-client", "100", "--audit-rate", "50")
    target = f"127.0.0.1:{srv.port}"
    b = Browser()
    try:
        d = b.driver
        d.get(w.url())
        assert d.title == "Online SMTP Response - smtpkit"
        assert "Advanced Output" in d.find_element(By.ID, "checker").text
        # the greeting only
        d.find_element(By.ID, "host").send_keys(target)
        submit("check")
        greeting = d.find_element(By.ID, "greeting").text
        assert greeting.startswith("220 mx.example.test ESMTP smtpkit"), greeting
        explain = d.find_element(By.CSS_SELECTOR, "#result .explain").text
        assert "The greeting: the server is ready" in explain
        assert d.find_elements(By.ID, "caps") == []
        # with the box ticked: the whole dialogue, capabilities explained
        assert d.find_element(By.ID, "host").get_attribute("value") == target
        d.find_element(By.ID, "advanced").click()
        submit("check")
        rows = d.find_elements(By.CSS_SELECTOR, "#caps tr")
        caps = {r.find_element(By.CLASS_NAME, "kw").text:
                r.find_element(By.CLASS_NAME, "capexplain").text for r in rows}
        assert caps["SIZE 10485760"].startswith("largest message accepted: 10 MiB"), caps
        assert "RFC 2920" in caps["PIPELINING"]
        assert "STARTTLS" in caps
        tls_caps = [r.find_element(By.CLASS_NAME, "kw").text
                    for r in d.find_elements(By.CSS_SELECTOR, "#caps-tls tr")]
        assert "AUTH PLAIN LOGIN" in tls_caps and "STARTTLS" not in tls_caps
        dialogue = d.find_element(By.ID, "dialogue").text
        assert "S: 220 mx.example.test ESMTP smtpkit" in dialogue
        assert "C: EHLO client.test" in dialogue and "C: STARTTLS" in dialogue
        assert "TLS_" in d.find_element(By.ID, "tls").text
        d.save_screenshot("/tmp/web-checker.png")
        # the audit button: the report in the page
        submit("audit")
        report = d.find_element(By.ID, "audit-report")
        assert f"smtpkit audit of {target}" in report.text
        assert d.find_element(By.CSS_SELECTOR, "#check-rcpt-before-mail td.outcome").text == \
            "PASS"
        assert d.find_element(By.CSS_SELECTOR, "#check-data-end td.outcome").text == "SKIP"
        d.save_screenshot("/tmp/web-audit.png")
    finally:
        b.close()


def test_not_an_open_proxy(tls_server, web, smtpkit_bin):
    srv = tls_server()
    w = web("--per-client", "2")
    # only the mail ports, unless allowed
    code, page = w.get("/run", host=f"127.0.0.1:{srv.port}", action="check")
    assert code == 403 and "is not allowed here" in page
    code, page = w.get("/run", host="bad host name!", action="check")
    assert code == 400
    # two runs a minute from one address, then 429 (port 25 has no server
    # here: the run answers quickly with the connection error)
    closed = free_port()
    w2 = web("--per-client", "2", "--allow-port", str(closed))
    for _ in range(2):
        code, page = w2.get("/run", host=f"127.0.0.1:{closed}", action="check")
        assert code == 200 and "could not connect" in page
    code, page = w2.get("/run", host=f"127.0.0.1:{closed}", action="check")
    assert code == 429 and "Too many runs from your address" in page
    # loopback only unless told otherwise
    r = subprocess.run([smtpkit_bin, "web", "--listen", "0.0.0.0:18999"], capture_output=True,
                       timeout=10)
    assert r.returncode == 2 and b"--allow-remote" in r.stderr


def test_run_bounded_in_time(web):
    """A server that accepts and never greets: the run ends with the
    timeout error, well within the time limit."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    port = s.getsockname()[1]
    w = web("--allow-port", str(port), "--timeout", "1", "--max-time", "5")
    t0 = time.monotonic()
    code, page = w.get("/run", host=f"127.0.0.1:{port}", action="check")
    s.close()
    assert code == 200
    assert "sent no greeting within 1 s" in page
    assert time.monotonic() - t0 < 5


def test_hostile_server_is_escaped(web):
    """A greeting with markup shows as text in the page."""
    from brokensmtp import BrokenServer
    srv = BrokenServer()
    srv.greeting = b"220 <img src=x onerror=alert(1)> hi\r\n"
    srv.start()
    try:
        w = web("--allow-port", str(srv.port))
        code, page = w.get("/run", host=f"127.0.0.1:{srv.port}")
    finally:
        srv.stop()
    assert code == 200
    assert "<img" not in page
    assert "220 &lt;img src=x onerror=alert(1)&gt; hi" in page
