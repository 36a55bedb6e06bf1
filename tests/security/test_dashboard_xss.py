"""The dashboard shows what agents wrote as text: a run, a rollout, spans, messages, tool arguments
and resources full of HTML and JavaScript, loaded in headless Chromium, run no script and inject no
element; every page keeps to its Content-Security-Policy (no violation reported)."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from agl_core.dashboard import create_dashboard_app
from agl_core.dashboard.headers import CONTENT_SECURITY_POLICY
from agl_core.store import LightningStore
from agl_core.tracing import semconv
from agl_core.types import PromptTemplate, Run, Span
from tests.dashboard.chromium import browser_page, needs_chromium, running_dashboard

IMG = "<img src=x onerror=window.__xss=1>"
SCRIPT = "</script><script>window.__xss=2</script>"
LINK = "javascript:window.__xss=3"
SVG = '<svg onload="window.__xss=4"><a href="javascript:window.__xss=5">x</a></svg>'
PAYLOADS = (IMG, SCRIPT, LINK, SVG)
RUN = f"run-{IMG}"

# Recorded before any page script: whatever reaches the DOM, and each CSP violation.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""
INJECTED = """() => [
  window.__xss === undefined,
  document.querySelectorAll("script").length,
  document.querySelectorAll("#view img, #view svg:not(.chart), #view iframe, #view object, #view script").length,
  [...document.querySelectorAll("#view [href]")].filter((a) => !a.getAttribute("href").startsWith("#")).length,
  [...document.querySelectorAll("#view *")].filter((el) => [...el.attributes].some((a) => a.name.startsWith("on"))).length,
  window.__csp,
]"""


def _messages(role: str, parts: list[dict]) -> str:
    return json.dumps([{"role": role, "parts": parts}])


def _hostile_store(store: LightningStore) -> str:
    store.add_resources({"prompt": PromptTemplate(template=SCRIPT + IMG)}, {"note": SVG, "score": 0.5})
    store.upsert_run(Run(run_id=RUN, algorithm=IMG, config={"lr": SCRIPT}))
    store.add_metrics(RUN, 0, {IMG: 1.0, "loss": 0.5})
    store.add_metrics(RUN, 1, {IMG: 2.0, "loss": 0.4})
    rollout = store.start_rollout({"question": SCRIPT}, run_id=RUN, metadata={"agent": IMG, "x": LINK})
    ids = {semconv.AGL_ROLLOUT_ID: rollout.rollout_id, semconv.AGL_ATTEMPT_ID: rollout.attempt.attempt_id}
    chat = {
        **ids,
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_REQUEST_MODEL: IMG,
        semconv.GEN_AI_INPUT_MESSAGES: _messages("user", [{"type": "text", "content": IMG + SCRIPT}]),
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": SVG}]),
        semconv.GEN_AI_OUTPUT_MESSAGES: _messages(
            "assistant", [{"type": "tool_call", "id": "c1", "name": IMG, "arguments": {"url": LINK, "html": SVG}}]
        ),
        "custom.attribute": SCRIPT,
        LINK: IMG,
    }
    tool = {
        **ids,
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: SVG,
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"href": LINK, "body": SCRIPT}),
        semconv.GEN_AI_TOOL_CALL_RESULT: IMG,
    }
    spans = [
        Span(trace_id="1" * 32, span_id=f"{n + 1:016x}", parent_id=None if n == 0 else f"{1:016x}", name=name,
             start_time=100.0 + n, end_time=100.5 + n, attributes=attrs, rollout_id=rollout.rollout_id,
             attempt_id=rollout.attempt.attempt_id, status={"code": "ERROR", "description": SVG} if n == 2 else {"code": "OK"})
        for n, (name, attrs) in enumerate([(f"invoke_agent {IMG}", {**ids, semconv.GEN_AI_AGENT_NAME: SCRIPT}),
                                           (f"chat {SCRIPT}", chat), (f"execute_tool {SVG}", tool)])
    ]  # fmt: skip
    store.add_spans(spans)
    store.update_attempt(rollout.rollout_id, rollout.attempt.attempt_id, "failed", error=IMG + SCRIPT)
    return rollout.rollout_id


@needs_chromium
def test_hostile_payloads_render_as_text_and_run_nothing(tmp_path):
    store = LightningStore(f"sqlite:///{tmp_path / 'store.db'}")
    rollout_id = _hostile_store(store)
    views = [  # each with what shows it has rendered (the previous view stays until then)
        ("#/runs", "tr.run-row"),
        (f"#/runs/{RUN}", ".chart-card .series"),
        ("#/rollouts", "tr.rollout-row"),
        (f"#/rollouts/{rollout_id}", ".wf-body .wf-row"),
        ("#/resources", ".res-card"),
    ]
    with running_dashboard(store) as url, browser_page() as page:
        page.add_init_script(WATCH)
        shown = ""
        for view, rendered in views:
            page.goto(url + view.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20"))
            page.wait_for_selector(rendered)
            if "rollouts/" in view:
                for row in page.locator(".wf-body .wf-row").all():  # every span's detail pane
                    row.click()
                    shown += page.inner_text("#span-detail")
            shown += page.inner_text("#view")
            harmless, scripts, elements, links, handlers, violations = page.evaluate(INJECTED)
            assert harmless, f"a payload ran on {view}"
            assert (scripts, elements, links, handlers) == (2, 0, 0, 0), view
            assert violations == [], f"{view} broke its own CSP: {violations}"
        for payload in (IMG, SCRIPT, LINK, "window.__xss=4"):
            assert payload in shown  # shown, as the text it is
    store.close()


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_every_answer_carries_the_csp(tmp_path, token):
    store = LightningStore("memory://")
    client = TestClient(create_dashboard_app(store, token=token))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("/", "/static/app.js", "/api/summary", "/api/rollouts/nope", "/login", "/nope"):
        for sent in (headers, {}):
            response = client.get(path, headers=sent)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, (path, response.status_code)
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    index = client.get("/", headers=headers).text
    assert "<script>" not in index and " style=" not in index  # nothing inline for the CSP to refuse
    store.close()
