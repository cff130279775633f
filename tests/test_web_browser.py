"""The web pages in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

A clinician's path by hand: fill the intake form for three vignettes (nocturnal cramps, RLS with
low ferritin, a red flag), upload a Synthea bundle, print, download the PDFs; axe-core checks
each page for serious or critical accessibility problems. Screenshots are written to
``build/screenshots/`` (named in the README) for a reviewer to look at.

The tests skip when Chromium is absent, unless LEGSPASM_REQUIRE_BROWSER=1 (set by ``.ci/run``,
which installs Chromium), in which case they fail.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from legspasm.audit import AuditStore
from legspasm.server import create_app
from legspasm.settings import Settings
from live_server import serve, upload_result
from test_web import synthea_bundle

playwright_sync = pytest.importorskip("playwright.sync_api")
axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright")

CHROMIUM = os.environ.get("LEGSPASM_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
AS_OF = dt.date(2026, 11, 21)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("LEGSPASM_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"LEGSPASM_REQUIRE_BROWSER=1 but {CHROMIUM} is missing")
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'audit.sqlite3'}"
    with AuditStore.open(url) as store:
        app = create_app(Settings(dev=True, database_url=url, as_of=AS_OF), store=store)
        with serve(app) as b:
            yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A tablet-sized page (iPad portrait) that fails the test on any script error."""
    context = browser.new_context(viewport={"width": 820, "height": 1180}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert errors == []


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def no_serious_axe_violations(page: Any) -> None:
    result = axe_sync.Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == []


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1


def answer(page: Any, question: str, value: str) -> None:
    """Click Yes / No / Unknown for a question (a fieldset whose legend is the question)."""
    group = page.locator("fieldset", has=page.locator("legend", has_text=question)).last
    group.get_by_label(value, exact=True).check()


def typical_cramp(page: Any) -> None:
    """The features of an idiopathic nocturnal cramp, answered by clicking."""
    answer(page, "Leg cramps or spasms", "Yes")
    answer(page, "Sudden, painful tightening of a muscle", "Yes")
    answer(page, "The muscle is hard to the touch during it", "Yes")
    page.get_by_label("When the episodes happen").select_option("night_or_rest")
    answer(page, "Stretching the muscle relieves it", "Yes")
    page.locator("#f-symptoms-cramp-episode-duration-minutes").fill("3")


def result_text(page: Any) -> str:
    """The whole result page's text, its folded sections opened."""
    open_folds(page)
    return str(page.locator("main").inner_text())


def open_folds(page: Any) -> None:
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")


def test_nocturnal_cramps_by_hand(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    no_serious_axe_violations(page)
    no_horizontal_scroll(page)
    shot(page, "01-intake-empty")
    page.get_by_label("Age (years)").fill("71")
    page.locator("#f-patient-sex").get_by_label("Female", exact=True).check()
    page.get_by_label("Weight", exact=True).fill("64")
    answer(page, "Pregnant", "No")
    typical_cramp(page)
    answer(page, "An urge to move the legs", "No")
    answer(page, "One leg is swollen", "No")
    answer(page, "Calf is tender or warm", "No")
    page.get_by_label("Medicine 1", exact=True).fill("Flexeril")
    page.get_by_label("Medicine 1 dose", exact=True).fill("10")
    page.get_by_label("Medicine 1 times a day", exact=True).fill("1")
    page.get_by_label("Medicine 1 start date", exact=True).fill("2026-09-01")
    page.locator("#f-lab-creatinine-value").fill("0.9")
    page.get_by_label("Creatinine (serum) unit").select_option("mg/dL")
    page.wait_for_function(
        "document.getElementById('crcl-out').textContent.includes('mL/min')", timeout=5000
    )
    assert "71 years" in page.locator("#age-out").inner_text()
    shot(page, "02-intake-cramps-filled")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_url("**/assessments/*")
    text = result_text(page)
    assert "Idiopathic nocturnal leg cramps" in text
    assert "stretching" in text.lower()
    assert "What not to do" in text
    assert "cyclobenzaprine" in text.lower()
    assert "Red flags: act before" not in text
    no_serious_axe_violations(page)
    no_horizontal_scroll(page)
    shot(page, "03-result-cramps")


def test_rls_with_low_ferritin_by_hand(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.get_by_label("Age (years)").fill("78")
    page.locator("#f-patient-sex").get_by_label("Male", exact=True).check()
    page.get_by_label("Weight", exact=True).fill("60")
    for q in (
        "An urge to move the legs",
        "The urge begins or gets worse when resting",
        "Moving (walking, stretching) partly or fully relieves it",
        "It is worse in the evening or at night",
        "Not explained by something else alone",
    ):
        answer(page, q, "Yes")
    for i, score in enumerate([3, 3, 2, 3, 2, 3, 2, 2, 2, 2], start=1):
        page.locator(f"#f-symptoms-rls-irls-items-{i}").select_option(str(score))
    page.wait_for_function(
        "document.getElementById('irls-out').textContent.startsWith('24')", timeout=5000
    )
    assert page.locator("#irls-out").inner_text() == "24 (severe)"
    page.locator("#f-lab-ferritin-value").fill("40")
    page.get_by_label("Ferritin (serum) unit").select_option("ng/mL")
    page.locator("#f-lab-creatinine-value").fill("247.5")
    page.get_by_label("Creatinine (serum) unit").select_option("umol/L")
    page.wait_for_function(
        "document.getElementById('crcl-full').textContent.includes('18.5 mL/min')", timeout=5000
    )
    shot(page, "04-intake-rls-filled")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_url("**/assessments/*")
    text = result_text(page)
    assert "Restless legs syndrome" in text
    assert "ferrous sulfate" in text.lower()
    derived = page.locator(".derived-values")
    assert page.locator("figure.chart svg[role=img]").count() >= 2  # ferritin and IRLS
    assert derived.locator("div", has_text="IRLS total").locator("dd").inner_text() == "24 (severe)"
    assert "18.5 mL/min" in derived.inner_text()
    # the gabapentinoid is dosed for CrCl 18.5, not the full dose
    assert "gabapentin" in text.lower()
    shot(page, "05-result-rls")


def test_red_flag_comes_first_and_withholds_self_care(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.get_by_label("Age (years)").fill("58")
    page.locator("#f-patient-sex").get_by_label("Female", exact=True).check()
    answer(page, "Pregnant", "No")
    typical_cramp(page)
    answer(page, "One leg is swollen", "Yes")
    answer(page, "Calf is tender or warm", "Yes")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_url("**/assessments/*")
    first = page.locator("main section").first  # the bottom line: the red flag leads it
    assert "Possible deep vein thrombosis" in first.locator(".bl-red-flag").inner_text()
    assert first.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"
    second = page.locator("main section").nth(1)
    assert "Red flags: act before anything else" in second.inner_text()
    assert "Held until the red flag is excluded" in second.inner_text()
    assert "Once the red flag is excluded" in result_text(page)
    shot(page, "06-result-red-flag")
    page.get_by_role("link", name="Print summary and handout").click()
    page.wait_for_url("**/print")
    handout = page.locator("article.handout").inner_text()
    assert "found signs that need checking today" in handout
    assert "One leg is swollen" in handout  # a sign found today, not a future "if"
    assert "Nightly stretching" not in handout  # withheld until DVT is excluded
    assert "[" not in handout  # no citation numbers for the patient


def test_missing_data_answered_in_place(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.get_by_label("Age (years)").fill("62")
    answer(page, "Leg cramps or spasms", "Yes")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_url("**/assessments/*")
    first_url = page.url
    page.locator("#fold-missing > summary").click()
    form = page.locator("form.answers")
    form.locator(
        "fieldset",
        has=page.locator("legend", has_text="A leg suddenly cold, pale and without a pulse"),
    ).get_by_label("Yes", exact=True).check()
    form.get_by_role("button", name="Re-assess with these answers").click()
    page.wait_for_url("**/assessments/*")
    assert page.url != first_url
    assert "Possible acute limb ischaemia" in page.locator(".bl-red-flag").inner_text()


def test_upload_a_synthea_bundle(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.get_by_label("File", exact=True).set_input_files(str(synthea_bundle()))
    page.get_by_role("button", name="Upload and assess").click()
    page.wait_for_url("**/assessments/*")
    text = result_text(page)
    assert "71 years" in text
    assert "From the record" in text
    assert "benzodiazepine" in text.lower() or "diazepam" in text.lower()
    shot(page, "07-result-synthea-upload")


def test_print_view_handout_and_pdf_downloads(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.locator("form[action='/examples/nocturnal-cramps'] button").click()
    page.wait_for_url("**/assessments/*")
    with page.expect_download() as got:
        page.get_by_role("link", name="Patient handout (PDF)").click()
    pdf = Path(got.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = " ".join("".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "During a cramp" in text
    assert "Nightly stretching" in text
    with page.expect_download() as got:
        page.get_by_role("link", name="Clinician summary (PDF)").click()
    summary = Path(got.value.path()).read_bytes()
    assert len(PdfReader(io.BytesIO(summary)).pages) >= 1
    page.get_by_role("link", name="Print summary and handout").click()
    page.wait_for_url("**/print")
    no_serious_axe_violations(page)
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden()
    assert (
        page.locator("article.handout").evaluate("e => getComputedStyle(e).breakBefore") == "page"
    )
    shot(page, "08-print-summary-and-handout")
    page.locator("article.handout").screenshot(path=str(SHOTS / "09-handout.png"))
    printed = page.pdf()
    assert printed.startswith(b"%PDF-")
    assert len(PdfReader(io.BytesIO(printed)).pages) >= 2


def test_history_reopens_and_keyboard_reaches_the_form(page: Any, base: str) -> None:
    page.goto(base + "/history")
    no_serious_axe_violations(page)
    page.get_by_role("link", name="Open").first.click()
    page.wait_for_url("**/assessments/*")
    assert "What to do" in result_text(page)
    shot(page, "10-history-reopened")
    page.goto(base + "/?form=full")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")


def test_validation_errors_show_next_to_the_field(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    page.locator("#f-lab-ferritin-value").fill("10000000")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_load_state()
    summary = page.locator("#error-summary")
    assert summary.is_visible()
    error = page.locator("#f-lab-ferritin-value-error")
    assert "plausible" in error.inner_text()
    assert page.locator("#f-lab-ferritin-value").input_value() == "10000000"
    assert page.locator("#f-lab-ferritin-value").get_attribute("aria-invalid") == "true"
    no_serious_axe_violations(page)
    shot(page, "11-intake-error")


def test_screenshots_folder_is_named_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "build/screenshots/" in readme
    assert shutil.which("chromium") or Path(CHROMIUM).exists()


# --- the adaptive intake (two steps) -----------------------------------------------------------


def step_one_cramps(page: Any, sex: str) -> None:
    """Step 1 for a typical nocturnal cramp: the complaint, age and sex, no red flag."""
    page.get_by_label("Age (years)").fill("58")
    page.locator("#f-patient-sex").get_by_label(sex, exact=True).check()
    answer(page, "Leg cramps or spasms", "Yes")
    answer(page, "Sudden, painful tightening of a muscle", "Yes")
    answer(page, "An urge to move the legs", "No")
    page.locator("#f-screen-none").check()


def test_step_one_asks_the_red_flags_first_then_step_two(page: Any, base: str) -> None:
    page.goto(base + "/")
    main = page.locator("main")
    text = main.inner_text()
    assert "Red-flag screen" in text
    assert "One leg is swollen" in text
    # the red-flag screen is in the first step, before anything else is asked
    assert "When the episodes happen" not in text
    assert "Pregnant" not in text
    no_serious_axe_violations(page)
    no_horizontal_scroll(page)
    step_one_cramps(page, "Male")
    page.get_by_role("button", name="Next: the questions that matter").click()
    page.wait_for_load_state()
    assert "Step 2" in page.locator("h2#step-h").inner_text()
    asked = page.locator("section[aria-labelledby='h-asked']").inner_text()
    assert "When the episodes happen" in asked
    assert "How long an episode lasts (minutes)" in asked
    assert "One leg is swollen" not in asked  # answered in step 1 (carried in hidden fields)
    assert page.locator("input[type=hidden][name='red_flags.unilateral_leg_swelling']").count() == 1
    # pregnancy is not asked for a man, not even under More details
    assert page.locator("[name='patient.pregnant']").count() == 0
    # everything else is folded, not lost
    assert page.locator("details.more").get_attribute("open") is None
    assert "IRLS" not in page.locator("main").inner_text()  # restless legs is not in play
    no_serious_axe_violations(page)
    no_horizontal_scroll(page)
    page.get_by_label("When the episodes happen").select_option("night_or_rest")
    page.get_by_label("How long an episode lasts (minutes)").fill("2")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_load_state()
    if "/assessments/" not in page.url:  # the answers raised more questions: assess now
        page.get_by_role("button", name="Assess without further questions").click()
    page.wait_for_url("**/assessments/*")
    assert "Idiopathic nocturnal leg cramps" in result_text(page)


def test_pregnancy_is_asked_for_a_woman(page: Any, base: str) -> None:
    page.goto(base + "/")
    step_one_cramps(page, "Female")
    page.get_by_role("button", name="Next: the questions that matter").click()
    page.wait_for_load_state()
    assert page.locator("[name='patient.pregnant']").count() >= 1


def test_full_form_hides_pregnancy_for_a_man(page: Any, base: str) -> None:
    page.goto(base + "/?form=full")
    pregnant = page.locator("fieldset", has=page.locator("legend", has_text="Pregnant")).first
    assert pregnant.is_visible()
    page.locator("#f-patient-sex").get_by_label("Male", exact=True).check()
    assert pregnant.is_hidden()
    page.locator("#f-patient-sex").get_by_label("Unknown", exact=True).check()
    assert pregnant.is_visible()


def test_rls_step_two_shows_the_irls_by_topic_with_the_licence_link(page: Any, base: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Age (years)").fill("70")
    answer(page, "An urge to move the legs", "Yes")
    page.locator("#f-screen-none").check()
    page.get_by_role("button", name="Next: the questions that matter").click()
    page.wait_for_load_state()
    for q in (
        "The urge begins or gets worse when resting",
        "It is worse in the evening or at night",
    ):
        answer(page, q, "Yes")
    answer(page, "Moving (walking, stretching) partly or fully relieves it", "Yes")
    answer(page, "Not explained by something else alone", "Yes")
    page.get_by_role("button", name="Assess", exact=True).click()
    page.wait_for_load_state()
    irls = page.locator("#f-irls")
    assert irls.is_visible()
    assert "IRLS item 1: Overall discomfort" in irls.inner_text()
    assert "licensed" in irls.inner_text()
    link = irls.get_by_role("link", name="the licence holder's page")
    assert "mapi-trust.org" in str(link.get_attribute("href"))


@pytest.mark.parametrize(("width", "height", "name"), [(1280, 800, "desk"), (390, 844, "phone")])
def test_screenshots_of_the_intake_steps(
    browser: Any, base: str, width: int, height: int, name: str
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    try:
        pg.goto(base + "/")
        no_horizontal_scroll(pg)
        shot(pg, f"20-intake-step1-{name}")
        step_one_cramps(pg, "Female")
        pg.get_by_role("button", name="Next: the questions that matter").click()
        pg.wait_for_load_state()
        no_horizontal_scroll(pg)
        shot(pg, f"21-intake-step2-{name}")
        pg.locator("details.more > summary").click()
        shot(pg, f"22-intake-step2-more-{name}")
    finally:
        context.close()


def _vignette_kinds() -> list[tuple[str, Path]]:
    """One vignette per kind of answer: each red-flag state, each likely condition, none."""
    from legspasm import evaluate, load_case
    from legspasm.knowledge import load_knowledge

    kb = load_knowledge()
    seen: dict[str, Path] = {}
    for folder in sorted((Path(__file__).parent / "vignettes").iterdir()):
        if not (folder / "case.yaml").exists():
            continue
        a = evaluate(load_case(folder / "case.yaml"), kb, AS_OF)
        if a.red_flags:
            kind = f"red-flag-{a.red_flags[0].status}"
        else:
            likely = [c.id for c in a.conditions if c.status in ("documented", "likely")]
            kind = likely[0] if likely else "nothing-established"
        seen.setdefault(kind, folder / "case.yaml")
    return sorted(seen.items())


KINDS = _vignette_kinds() if Path(CHROMIUM).exists() else []
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.mark.parametrize(("kind", "case"), KINDS, ids=[k for k, _ in KINDS])
def test_the_bottom_line_and_any_red_flag_are_in_the_first_screen(
    browser: Any, base: str, kind: str, case: Path
) -> None:
    """At 1280x800 and 390x844 the bottom line (and the red flag's own section) is inside the
    first viewport; a withheld step is never shown as a plan step; no rule id or field name
    reaches the page; the detail is folded below."""
    from legspasm import evaluate, load_case
    from legspasm.knowledge import load_knowledge
    from test_bottom_line import _plain, internal_words

    kb = load_knowledge()
    a = evaluate(load_case(case), kb, AS_OF)
    for name, (width, height) in VIEWPORTS.items():
        page = upload_result(browser, base, case, width, height)
        box = page.locator(".bottom-line").bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= height, (kind, name, box)
        if a.red_flags:
            assert page.locator(".bl-red-flag").count() == 1
            head = page.locator(".redflags h2").bounding_box()
            assert head is not None
            assert head["y"] + head["height"] <= height, (kind, name, head)
        for w in a.withheld:
            steps = page.locator(".steps > li.step > p:first-child", has_text=w.text[:60])
            assert steps.count() == 0, (kind, w.text)
        assert page.locator("details.fold[open]").count() == 0
        text = _plain(page.locator("main").evaluate("e => e.textContent"))
        hit = internal_words(kb).search(text)
        assert hit is None, (kind, hit.group(0), text[hit.start() - 60 : hit.end() + 30])
        no_horizontal_scroll(page)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"30-result-{kind}-{name}.png"))
        page.context.close()
