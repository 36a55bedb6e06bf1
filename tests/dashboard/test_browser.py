"""End to end in headless Chromium (Debian's binary, driven by Playwright): the dashboard on a
store holding a finished run shows the runs list, the run's charts and a rollout's trace tree.

Screenshots go to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import pytest

from agl_core.types import Run
from tests.dashboard.chromium import ARTIFACTS, assert_rendered_cleanly, browser_page, needs_chromium, running_dashboard
from tests.dashboard.demo_store import (
    HELDOUT_STEPS,
    LIVE_RUN_ID,
    RUN_ID,
    TRACE_SPAN_NAMES,
    TRAIN_STEPS,
)

pytestmark = needs_chromium


@pytest.fixture
def dashboard_url(demo_store):
    with running_dashboard(demo_store) as url:
        yield url


@pytest.fixture
def page():
    with browser_page() as page:
        yield page


def test_runs_charts_and_trace_in_chromium(dashboard_url, page, demo_store):
    # Runs list.
    page.goto(dashboard_url)
    page.wait_for_selector("tr.run-row")
    rows = page.locator("tr.run-row")
    assert rows.count() == 2
    done = page.locator(f'tr.run-row[data-run-id="{RUN_ID}"]')
    assert "grpo" in done.inner_text() and "finished" in done.inner_text()
    assert "0.76" in done.inner_text()  # best held-out reward
    assert str(TRAIN_STEPS) in done.locator("td").nth(3).inner_text()
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "runs.png", full_page=True)

    # The finished run's charts: one point per step, held-out points only where evaluated.
    done.locator("a").click()
    page.wait_for_selector('.series[data-name="loss"]')
    titles = page.locator(".chart-title").all_inner_texts()
    assert titles[:2] == ["reward", "loss"] and {"kl", "tokens_per_s"} <= set(titles)
    assert page.locator('.series[data-name="loss"] circle.pt').count() == TRAIN_STEPS
    assert page.locator('.series[data-name="reward_mean"] circle.pt').count() == TRAIN_STEPS
    assert page.locator('.series[data-name="heldout_reward"] circle.pt').count() == len(HELDOUT_STEPS)
    # per-set held-out metrics: one chart per metric, one line per task set; set sizes are not charted
    per_set = page.locator('svg[aria-label="heldout_reward_sampled"] .series')
    assert [per_set.nth(i).get_attribute("data-name") for i in range(per_set.count())] == [
        "heldout_reward_sampled/coding", "heldout_reward_sampled/math"
    ]
    assert not [t for t in titles if t.startswith("heldout_n")]
    page.locator('svg[aria-label="loss"]').hover()
    assert "step" in page.locator(".chart-tip:visible").inner_text()
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "run_charts.png", full_page=True)

    # A rollout's trace: the span tree with the expected names, nested under the agent span.
    page.goto(dashboard_url + "#/rollouts?status=succeeded&agent=solver")
    page.wait_for_selector("tr.rollout-row")
    assert page.locator("tr.rollout-row").count() == 12  # even-numbered rollouts; none failed
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "rollouts.png", full_page=True)
    page.locator("tr.rollout-row a").first.click()
    page.wait_for_selector(".wf-body .wf-row")
    names = page.locator(".wf-body .span-name").all_inner_texts()
    assert names == TRACE_SPAN_NAMES
    indents = page.eval_on_selector_all(".wf-body .wf-name", "els => els.map((e) => getComputedStyle(e).paddingLeft)")
    assert indents[0] == "8px" and set(indents[1:]) == {"24px"}
    detail = page.locator("#span-detail")
    assert "What is" in detail.inner_text() and "calculator" in detail.inner_text()  # first LLM call selected
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "trace_llm_call.png", full_page=True)
    page.locator('.wf-row.kind-reward').click()
    assert "exact_match" in detail.inner_text()
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "trace.png", full_page=True)

    # Collapsing the agent span hides its children.
    page.locator(".wf-body .twisty").first.click()
    assert page.locator(".wf-body .wf-row").count() == 1

    # Resources history.
    page.goto(dashboard_url + "#/resources")
    page.wait_for_selector(".res-card")
    assert page.locator(".res-card").count() == 3
    assert "Think step by step" in page.locator('.res-card[data-version="2"]').inner_text()
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "resources.png", full_page=True)


def test_run_charts_update_live_while_training(dashboard_url, page, demo_store):
    page.goto(dashboard_url + f"#/runs/{LIVE_RUN_ID}")
    page.wait_for_selector('.series[data-name="reward_mean"]')
    assert page.locator(".live").is_visible()
    points = page.locator('.series[data-name="reward_mean"] circle.pt')
    assert points.count() == 1
    for step in (1, 2, 3):
        demo_store.add_metrics(LIVE_RUN_ID, step, {"reward_mean": 0.3 + 0.1 * step, "loss": 1.0 / step})
    page.wait_for_function(
        "() => document.querySelectorAll('.series[data-name=\"reward_mean\"] circle.pt').length === 4", timeout=10_000
    )
    assert page.locator('.series[data-name="loss"] circle.pt').count() == 3
    demo_store.upsert_run(Run(run_id=LIVE_RUN_ID, algorithm="apo", status="finished"))
    page.wait_for_selector(".live", state="hidden", timeout=10_000)
    assert_rendered_cleanly(page)
    page.screenshot(path=ARTIFACTS / "run_live.png", full_page=True)
