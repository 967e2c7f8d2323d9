"""Screenshots of the MLflow UI after a small sweep and a promote, for docs/ui.md.

Runs the researcher's path on a fresh store (or on `--tracking-uri`'s):

  1. a small Optuna sweep on the synthetic sample (`galaxyzoo sweep`, nested trial runs),
  2. `galaxyzoo promote` (the best trial to the Model Registry),
  3. after the promote, so the registry keeps the sweep's pick: `galaxyzoo ensemble` of the sweep's
     top 2 trials, and a `galaxyzoo train --init-from` warm start from the best trial's model,
  4. `mlflow ui` on 127.0.0.1, driven by headless Chromium through Selenium, in the "Model training"
     UI with the MLflow Assistant panel closed: the runs table with the sweep expanded and the
     sweep's metric and searched params as columns (1_runs_table.png), the compare view of its
     trials with parallel coordinates over the searched params against the metric
     (2_compare_trials.png) and their differing params (3_compare_params.png), the best trial's
     page (4_best_trial.png), the registered model (5_registered_model.png), the version with
     its description (6_model_version.png), and the pages of the ensemble run (7_ensemble_run.png)
     and of the warm-started run (8_warm_start_run.png), the latest of each in the sweep's experiment.

Needs Debian's `chromium` and `chromium-driver` and `selenium` (the `ui` extra). The selectors
(button ids, CSS classes) are MLflow 3.17's UI; a later UI may need them updated.

Usage:  .venv/bin/python benchmarks/ui_screenshots.py [--out docs/ui] [--trials 6] [--epochs 3]
                                                      [--tracking-uri URI] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from galaxyzoo.system.tempdirs import scratch

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1900, 1100  # wide enough for the runs table's chosen columns


def galaxyzoo(*args: str, env: dict[str, str], cwd: Path) -> None:
    print("$ galaxyzoo", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "galaxyzoo", *args], env=env, cwd=cwd, check=True)


def ensemble_and_warm_start(client, parent, best, *, epochs: str, env: dict[str, str], cwd: Path) -> None:
    """The sweep's top 2 trials averaged into one run, and one training warm-started from the best trial's model."""
    from galaxyzoo.tracking.run_config import download_run_config

    galaxyzoo("ensemble", "--sweep-run", parent.info.run_id, "--top-k", "2", env=env, cwd=cwd)
    # the best trial's resolved config builds its network exactly (the only one its weights fit), but its
    # description names the trial: a new one says what this run is
    config = download_run_config(client, best.info.run_id, cwd)
    description = f"The config of {best.info.run_name} of the sweep, trained further from that trial's weights."
    galaxyzoo("train", "--experiment", str(config), "--epochs", epochs,
              "--set", f"description={json.dumps(description)}", "--init-from", f"runs:/{best.info.run_id}/model",
              "--freeze-blocks", "1", env=env, cwd=cwd)


def latest_run(client, exp_id: str, tag: str):
    """The experiment's latest run carrying `tag`, or None."""
    runs = client.search_runs([exp_id], filter_string=f"tags.`{tag}` != ''",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str, cwd: Path):
    """`mlflow ui` on a free loopback port; yields its base URL and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no GenAI job runner (docs/sweeps.md)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # the server imports MLflow first: up to a minute on a loaded box
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None:
                raise SystemExit("mlflow ui exited before it listened")
            time.sleep(0.5)
        yield url
    finally:
        # `mlflow ui` starts uvicorn, a job runner and its huey consumers in its session: stop them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def browser(tmp: Path):
    """Headless Chromium at the UI's size; what it writes in TMPDIR (its singleton socket folder, which it
    leaves behind) goes into `tmp`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(flag)
    tmp.mkdir(parents=True, exist_ok=True)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver", env={**os.environ, "TMPDIR": str(tmp)})
    return webdriver.Chrome(service=service, options=options)


def visit(driver, url: str, *, wait_for: str | None = None, settle: float = 4.0, height: int = HEIGHT) -> None:
    """Open `url` in a window `height` px tall, wait until `wait_for` text shows (if given) and the page settles."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(WIDTH, height)
    driver.get(url)
    if wait_for:
        WebDriverWait(driver, 60).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), wait_for))
    time.sleep(settle)  # charts and tables render after the data arrives


def find(driver, css: str = "", *, text: str = "", within=None):
    """The elements matching `css`, or those whose own text is exactly `text` (an XPath literal)."""
    from selenium.webdriver.common.by import By

    root = within or driver
    if text:
        return root.find_elements(By.XPATH, f".//*[normalize-space(text())={text!r}]")
    return root.find_elements(By.CSS_SELECTOR, css)


def click(element, pause: float = 1.0) -> None:
    element.click()
    time.sleep(pause)


def tidy(driver) -> None:
    """Close the MLflow Assistant panel (it opens by itself on a first visit and takes a third of the width)."""
    for button in find(driver, 'button[data-component-id="mlflow.assistant.chat_panel.close"]'):
        with contextlib.suppress(Exception):
            click(button)


def model_training_ui(driver) -> None:
    """Pick the sidebar's "Model training" side of the "GenAI | Model training" toggle (the UI remembers it)."""
    for toggle in find(driver, text="Model training"):
        with contextlib.suppress(Exception):
            click(toggle, 2)
            return


def scroll_to(driver, text: str) -> None:
    """Scroll the page's inner scroll box so the first element showing exactly `text` is at the top."""
    for element in find(driver, text=text):
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
        time.sleep(1)
        return


def save(driver, path: Path) -> None:
    """Screenshot the window to `path`, re-saved with a 256-colour palette when that keeps it under 400 KB."""
    from PIL import Image

    tidy(driver)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    if path.stat().st_size > 400_000:  # UI screenshots are flat colours and text: a palette loses nothing visible
        Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1000} KB)")


def toggle_columns(driver, columns: list[str]) -> None:
    """Tick (or untick) each name in the runs table's "Columns" selector: search it, click its exact tree node."""
    from selenium.webdriver.common.keys import Keys

    click(find(driver, 'button[data-testid="column-selection-dropdown"]')[0])
    search = find(driver, 'input[placeholder="Search columns"]')[0]
    for column in columns:
        search.send_keys(Keys.CONTROL, "a")
        search.send_keys(column)
        time.sleep(1)
        for node in find(driver, '[role="dialog"] .du-bois-light-tree-treenode'):
            if node.text.strip() == column:
                click(find(driver, ".du-bois-light-tree-checkbox", within=node)[0])
                break
        else:
            print(f"warning: no column {column!r} in the Columns selector", file=sys.stderr)
    search.send_keys(Keys.ESCAPE)
    time.sleep(1)


def choose(driver, select, values: list[str]) -> None:
    """Make an antd multi-select (the compare view's Parameters / Metrics boxes) hold exactly `values`."""
    from selenium.webdriver.common.keys import Keys

    while removes := find(driver, ".du-bois-light-select-selection-item-remove", within=select):
        click(removes[0], 0.5)
    box = find(driver, "input", within=select)[0]
    for value in values:
        click(select, 0.5)
        box.send_keys(value)
        time.sleep(1)
        options = [o for o in find(driver, ".du-bois-light-select-item-option") if o.get_attribute("title") == value]
        if options:
            click(options[0], 0.5)
        else:
            print(f"warning: no option {value!r} in the select box", file=sys.stderr)
    box.send_keys(Keys.ESCAPE)
    time.sleep(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "ui", help="folder for the PNGs")
    parser.add_argument("--trials", default="6", help="sweep trials (default 6)")
    parser.add_argument("--epochs", default="3", help="epochs per trial (default 3)")
    parser.add_argument("--tracking-uri", help="screenshot this store instead of running a new sweep")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()

    import mlflow

    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(scratch("galaxyzoo-ui")))
        work.mkdir(parents=True, exist_ok=True)
        uri = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        if not args.tracking_uri:
            galaxyzoo("sweep", "--config", str(REPO / "sweeps" / "quickstart.yaml"), "--n-trials", args.trials,
                      "--epochs", args.epochs, "--set", f"data.workdir={work / 'data'}", env=env, cwd=work)
            galaxyzoo("promote", env=env, cwd=work)

        client = mlflow.MlflowClient(uri)
        from galaxyzoo.tracking.names import TAG_ENSEMBLE, TAG_INIT_FROM, TAG_SWEEP

        parents = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                     filter_string=f"tags.`{TAG_SWEEP}` != ''",
                                     order_by=["attributes.start_time DESC"])
        if not parents:
            raise SystemExit(f"{uri}: no sweep parent run to show")
        parent = parents[0]
        exp_id = parent.info.experiment_id
        trials = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        if "best_run_id" not in parent.data.tags:
            raise SystemExit(f"{uri}: sweep run {parent.info.run_id} names no best trial (tag best_run_id)")
        # the sweep's own pick: pruned trials are FINISHED too and keep an earlier epoch's val_rmse
        best = client.get_run(parent.data.tags["best_run_id"])
        if not args.tracking_uri:
            ensemble_and_warm_start(client, parent, best, epochs=args.epochs, env=env, cwd=work)
        ensemble, warm = (latest_run(client, exp_id, tag) for tag in (TAG_ENSEMBLE, TAG_INIT_FROM))
        models = client.search_registered_models()
        # the searched keys are the parent's `space.<key>` params; the metric its `sweep.metric`
        searched = sorted(k.removeprefix("space.") for k in parent.data.params if k.startswith("space."))
        metric = parent.data.params.get("sweep.metric", "val_rmse")
        out = args.out

        with mlflow_ui(uri, work) as url:
            driver = browser(work / "chromium-tmp")
            stack.callback(driver.quit)
            runs_table = f"{url}/#/experiments/{exp_id}/runs"
            visit(driver, runs_table, wait_for=parent.info.run_name)
            model_training_ui(driver)
            tidy(driver)
            visit(driver, runs_table, wait_for=parent.info.run_name)
            # the [+] left of the parent's name lists its trials under it
            name_cell = find(driver, text=parent.info.run_name)[0].find_element(
                "xpath", "./ancestor::*[@role='gridcell'][1]")
            click(find(driver, "button", within=name_cell)[0], 2)
            toggle_columns(driver, [metric, *searched, "Source"])  # Source (the entry script) only takes room
            save(driver, out / "1_runs_table.png")

            run_ids = ",".join(f'"{t.info.run_id}"' for t in trials)
            visit(driver, f"{url}/#/compare-runs?runs=[{run_ids}]&experiments=[\"{exp_id}\"]",
                  wait_for="Parallel Coordinates", settle=6)
            params_box, metrics_box = find(driver, ".du-bois-light-select-multiple")[:2]
            choose(driver, params_box, searched)
            choose(driver, metrics_box, [metric])
            save(driver, out / "2_compare_trials.png")
            driver.set_window_size(WIDTH, 1300)
            # "Show diff only" of the Parameters section leaves the searched keys
            click(find(driver, text="Show diff only")[0].find_element(
                "xpath", "./ancestor::*[.//button[@role='switch']][1]//button[@role='switch']"), 2)
            scroll_to(driver, "Run details")  # its run names head the params rows below
            save(driver, out / "3_compare_params.png")

            visit(driver, f"{url}/#/experiments/{exp_id}/runs/{best.info.run_id}", wait_for=best.info.run_name,
                  height=2000)
            save(driver, out / "4_best_trial.png")
            if models:
                name = models[0].name
                visit(driver, f"{url}/#/models/{name}", wait_for=name, height=1400)
                save(driver, out / "5_registered_model.png")
                version = max(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
                visit(driver, f"{url}/#/models/{name}/versions/{version}", wait_for=f"Version {version}",
                      height=1200)
                save(driver, out / "6_model_version.png")
            for run, png in ((ensemble, "7_ensemble_run.png"), (warm, "8_warm_start_run.png")):
                if run:
                    visit(driver, f"{url}/#/experiments/{exp_id}/runs/{run.info.run_id}", wait_for=run.info.run_name,
                          height=2000)
                    save(driver, out / png)


if __name__ == "__main__":
    main()
