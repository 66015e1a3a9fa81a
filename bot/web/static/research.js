/* tradebot dashboard: the research page. A form for a backtest, sweep or walk-forward run (the
   same choices as `tradebot backtest`), its progress live over the WebSocket, then its figures:
   statistics, the sweep's best rows, the deflated Sharpe ratio and the probability of backtest
   overfitting with what they mean, the walk-forward windows, and links to the HTML report and files.
   Data is always inserted as text, never as HTML. */
"use strict";

(function () {
  const { el, table, card, section, money, pct } = TB;
  const num = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const fixed = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: 4 }));
  const STATS = [
    ["Return", (s) => pct(s.return_pct), (s) => TB.cls(s.return_pct)],
    ["Final equity", (s) => money(s.final_equity)],
    ["Sharpe", (s) => num(s.sharpe)],
    ["Sortino", (s) => num(s.sortino)],
    ["Max drawdown", (s) => pct(s.max_drawdown_pct)],
    ["Win rate", (s) => pct(s.win_rate)],
    ["Profit factor", (s) => (s.profit_factor === null ? "inf" : num(s.profit_factor))],
    ["Exposure", (s) => pct(s.exposure_pct)],
    ["Trades", (s) => String(s.n_trades)],
  ];
  const FILES = [["report.html", "Open the HTML report"], ["result.json", "JSON"], ["sweep.csv", "Sweep CSV"], ["report.txt", "Text report"]];
  const lab = { options: null, form: null, job: null, shown: null, poll: null };

  /* ------------------------------------------------------------------ the form */

  function field(label, input, hint) {
    return el("label", { class: "field" }, el("span", { class: "label" }, label), input, hint ? el("span", { class: "hint" }, hint) : null);
  }

  function buildForm(options) {
    const f = {};
    f.strategy = el("select", { name: "strategy" }, options.strategies.map((s) => el("option", { value: s.name }, s.name)));
    f.params = el("div", { class: "grid", id: "params" });
    f.data = el("select", { name: "data" },
      el("option", { value: "sample" }, "a shipped sample"),
      el("option", { value: "store", disabled: !options.store.length }, "the local bar store" + (options.store.length ? "" : " (empty)")),
      el("option", { value: "csv", disabled: !options.csv_files.length }, "a CSV file on the server" + (options.csv_dir ? (options.csv_files.length ? "" : " (none)") : " (off)")));
    f.sample = el("select", { name: "sample" }, options.samples.map((s) => el("option", { value: s.name }, s.name + ": " + s.about)));
    f.file = el("select", { name: "file" }, options.csv_files.map((c) => el("option", { value: c.path }, c.path)));
    const frames = [...new Set(options.store.map((s) => s.timeframe))];
    f.storeFrame = el("select", { name: "store-timeframe" }, frames.map((t) => el("option", { value: t }, t)));
    f.symbols = el("div", { class: "choices", id: "store-symbols" });
    f.start = el("input", { name: "start", type: "date" });
    f.end = el("input", { name: "end", type: "date" });
    f.timeframe = el("select", { name: "timeframe" }, el("option", { value: "" }, "as the data"), options.timeframes.map((t) => el("option", { value: t }, t)));
    f.walk = el("input", { name: "walk_forward", placeholder: "2y/6M", size: 10, autocomplete: "off" });
    f.rank = el("select", { name: "rank_by" }, options.rank_by.map((m) => el("option", { value: m }, m)));
    const number = (name, placeholder) => el("input", { name, placeholder, inputmode: "decimal", size: 8, autocomplete: "off" });
    f.cash = number("cash", "10000");
    f.commission = number("commission", "0");
    f.slippage = number("slippage", "0");
    f.stop = number("stop_loss", "config");
    f.target = number("take_profit", "config");
    f.run = el("button", { type: "submit", class: "act", id: "run" }, "Run");
    f.cancel = el("button", { type: "button", id: "cancel-job", hidden: true, onclick: cancelJob }, "Cancel");

    f.sampleBox = el("div", { class: "grid" }, field("Sample", f.sample));
    f.storeBox = el("div", { class: "grid" }, field("Timeframe", f.storeFrame), field("Symbols (several: a portfolio)", f.symbols),
      field("From", f.start), field("To (exclusive)", f.end));
    f.csvBox = el("div", { class: "grid" }, field("File", f.file, options.csv_dir ? "under " + options.csv_dir : ""));
    f.form = el("form", { id: "research-form", class: "research", onsubmit: submit },
      el("div", { class: "grid" }, field("Strategy", f.strategy), field("Data", f.data), field("Bar length", f.timeframe, "a multiple of the data's own: its bars are merged")),
      f.params, f.sampleBox, f.storeBox, f.csvBox,
      el("div", { class: "grid" },
        field("Walk-forward", f.walk, "TRAIN/TEST: 2y/6M, 30d/7d or bars 5000/1000; empty: none"),
        field("Rank a sweep by", f.rank), field("Cash", f.cash), field("Commission", f.commission, "0.001 = 0.1%"),
        field("Slippage", f.slippage), field("Stop-loss %", f.stop), field("Take-profit %", f.target)),
      el("div", { class: "actions" }, f.run, f.cancel,
        el("span", { class: "hint" }, `Runs in a separate process at the lowest priority, one job at a time, within ${options.memory_mb} MB, on ${options.workers} process${options.workers > 1 ? "es" : ""}.`)));
    f.strategy.addEventListener("change", () => drawParams(f));
    f.data.addEventListener("change", () => showData(f));
    f.storeFrame.addEventListener("change", () => drawSymbols(f));
    drawParams(f);
    drawSymbols(f);
    showData(f);
    return f;
  }

  function drawParams(f) {
    const spec = lab.options.strategies.find((s) => s.name === f.strategy.value);
    f.paramInputs = spec.params.map((p) => {
      const bounds = p.minimum !== null && p.maximum !== null ? ` (${p.minimum} to ${p.maximum})` : "";
      const input = el("input", { name: "param-" + p.name, "data-param": p.name, placeholder: String(p.default), size: 12, autocomplete: "off" });
      return [p.name, input, field(p.name, input, (p.help ? p.help + bounds : bounds.trim()) || null)];
    });
    f.params.replaceChildren(...f.paramInputs.map((x) => x[2]),
      el("p", { class: "hint wide" }, "One value; a list 2,2.5,3 or a range 7..14 (7..14:2) makes a sweep of every combination. Empty: the default."));
  }

  function drawSymbols(f) {
    const frame = f.storeFrame.value;
    const series = lab.options.store.filter((s) => s.timeframe === frame);
    f.symbols.replaceChildren(...series.map((s) => el("label", { class: "choice" },
      el("input", { type: "checkbox", value: s.symbol, "data-first": s.first || "", "data-last": s.last || "", onchange: () => span(f) }),
      ` ${s.symbol} (${s.bars.toLocaleString("en-US")} bars${s.first ? `, ${s.first.slice(0, 10)} to ${s.last.slice(0, 10)}` : ""})`)));
    const first = f.symbols.querySelector("input");
    if (first) first.checked = true;
    span(f);
  }

  /* The dates default to what every chosen symbol has: the latest first bar to the earliest last one. */
  function span(f) {
    const chosen = [...f.symbols.querySelectorAll("input:checked")];
    if (!chosen.length) return;
    const first = chosen.map((c) => c.dataset.first).sort().pop();
    const last = chosen.map((c) => c.dataset.last).sort()[0];
    if (!first || !last) return; /* a file with no bars yet */
    f.start.value = first.slice(0, 10);
    const end = new Date(Date.parse(last.slice(0, 10) + "T00:00:00Z") + 86400000);
    f.end.value = end.toISOString().slice(0, 10);
  }

  function showData(f) {
    const kind = f.data.value;
    f.sampleBox.hidden = kind !== "sample";
    f.storeBox.hidden = kind !== "store";
    f.csvBox.hidden = kind !== "csv";
  }

  function request(f) {
    const body = { strategy: f.strategy.value, data: f.data.value, params: {}, rank_by: f.rank.value };
    for (const [name, input] of f.paramInputs) if (input.value.trim()) body.params[name] = input.value.trim();
    if (body.data === "sample") body.sample = f.sample.value;
    if (body.data === "csv") body.file = f.file.value;
    if (body.data === "store") {
      body.symbols = [...f.symbols.querySelectorAll("input:checked")].map((c) => c.value);
      body.start = f.start.value;
      body.end = f.end.value;
      body.timeframe = f.storeFrame.value;
    } else if (f.timeframe.value) body.timeframe = f.timeframe.value;
    if (f.walk.value.trim()) body.walk_forward = f.walk.value.trim();
    for (const [key, input] of [["cash", f.cash], ["commission", f.commission], ["slippage", f.slippage], ["stop_loss", f.stop], ["take_profit", f.target]]) {
      if (input.value.trim()) body[key] = Number(input.value.trim());
    }
    return body;
  }

  async function submit(event) {
    event.preventDefault();
    const f = lab.form;
    f.run.disabled = true;
    try {
      const job = await TB.api("/research/jobs", { method: "POST", body: request(f) });
      follow(job);
      TB.toast("Started: " + job.title);
      loadJobs();
    } catch (error) {
      TB.toast(error.message, "error");
      f.run.disabled = false;
    }
  }

  async function cancelJob() {
    if (!lab.job) return;
    try {
      const job = await TB.api("/research/jobs/" + lab.job.id, { method: "DELETE" });
      TB.toast("Canceled: " + job.title, "muted");
      heard(job);
    } catch (error) {
      TB.toast(error.message, "error");
    }
  }

  /* ------------------------------------------------------------------ progress */

  function follow(job) {
    lab.job = job;
    if (lab.shown !== job.id) TB.replace("research-result", el("div", {})); /* an earlier job's figures go */
    lab.shown = job.id;
    buttons(true);
    drawProgress(job);
    clearInterval(lab.poll);
    /* The WebSocket carries every change; a slow read now and then covers a missed message. */
    lab.poll = setInterval(() => TB.api("/research/jobs/" + job.id).then((r) => heard(r.job)).catch(() => {}), 3000);
  }

  function heard(job) {
    if (!lab.job || job.id !== lab.job.id) {
      if (job.state === "running" && !lab.job) follow(job); /* started elsewhere (another tab, a script) */
      else loadJobs();
      return;
    }
    lab.job = job;
    buttons(job.state === "running");
    if (lab.shown === job.id) drawProgress(job);
    if (job.state !== "running") {
      clearInterval(lab.poll);
      lab.job = null;
      if (lab.shown === job.id) show(job.id).catch((e) => TB.toast(e.message, "error"));
      loadJobs();
    }
  }

  /* Run while no job runs; Cancel while one does (whichever job the page shows). */
  function buttons(running) {
    if (!lab.form) return;
    lab.form.run.disabled = running;
    lab.form.cancel.hidden = !running;
  }

  function drawProgress(job) {
    const running = job.state === "running";
    const counted = job.total ? `${job.done.toLocaleString("en-US")} of ${job.total.toLocaleString("en-US")} backtests` : "";
    const bar = el("progress", { max: String(job.total || 1), value: String(job.total ? job.done : running ? 0 : 1), id: "job-bar" });
    if (running && !job.total) bar.removeAttribute("value"); /* indeterminate */
    TB.replace("research-progress", section(job.title,
      el("p", { class: "job-state state-" + job.state, id: "job-state" }, running ? `Running: ${job.stage}` : job.state === "done" ? "Done." : `${job.state[0].toUpperCase() + job.state.slice(1)}: ${job.error || ""}`),
      bar, el("p", { class: "hint", id: "job-count" }, [counted, `started ${TB.time(job.started)} UTC by ${job.by}`].filter(Boolean).join(" · "))));
  }

  /* ------------------------------------------------------------------ figures */

  async function show(id) {
    const result = await TB.api("/research/jobs/" + id);
    lab.shown = id;
    drawProgress(result.job);
    const figures = result.figures;
    if (!figures) {
      TB.replace("research-result", el("div", {}));
      return;
    }
    const parts = [el("p", { class: "hint" }, `${figures.title}: ${figures.bars.toLocaleString("en-US")} bars${figures.timeframe ? " of " + figures.timeframe : ""}.`),
      el("div", { class: "cards", id: "result-cards" }, STATS.map(([label, value, tone]) => card(label, value(figures.stats), tone ? tone(figures.stats) : "")))];
    if (figures.overfitting) parts.push(overfitting(figures.overfitting));
    if (figures.sweep) parts.push(sweepTable(figures.sweep));
    if (figures.walk_forward) parts.push(...windows(figures.walk_forward));
    if (figures.portfolio) parts.push(portfolio(figures.portfolio));
    parts.push(el("div", { class: "actions", id: "job-files" }, FILES.filter(([name]) => result.job.files.includes(name)).map(([name, label]) =>
      el("a", { class: "button", href: `/api/v1/research/jobs/${id}/${name}`, target: name.endsWith(".html") || name.endsWith(".txt") ? "_blank" : null,
        rel: "noopener", id: "file-" + name.replace(".", "-") }, label))));
    TB.replace("research-result", section("Result", ...parts));
  }

  function overfitting(o) {
    const d = o.deflated_sharpe, p = o.pbo;
    return el("div", { id: "overfitting" },
      el("h2", {}, "Overfitting"),
      el("div", { class: "cards" },
        card("Deflated Sharpe ratio", num(d.dsr), d.dsr !== null && d.dsr >= 0.95 ? "up" : "down"),
        card("Probability of backtest overfitting", num(p.pbo), p.pbo !== null && p.pbo < 0.5 ? "up" : "down"),
        card("Combinations tried", d.trials.toLocaleString("en-US")),
        card("Expected best Sharpe by luck", num(d.expected_max_sharpe_annualised))),
      el("p", { class: "meaning", id: "dsr-meaning" }, o.meaning.deflated_sharpe),
      el("p", { class: "meaning", id: "pbo-meaning" }, o.meaning.pbo));
  }

  function sweepTable(sweep) {
    const columns = [{ label: "#", num: true, value: (r) => String(r.rank) }]
      .concat(sweep.params.map((name) => ({ label: name, num: true, value: (r) => fixed(r.params[name]) })))
      .concat([
        { label: "Return", num: true, value: (r) => pct(r.stats.return_pct), cls: (r) => TB.cls(r.stats.return_pct) },
        { label: "Sharpe", num: true, value: (r) => num(r.stats.sharpe) },
        { label: "Sortino", num: true, value: (r) => num(r.stats.sortino) },
        { label: "Max DD", num: true, value: (r) => pct(r.stats.max_drawdown_pct) },
        { label: "Win rate", num: true, value: (r) => pct(r.stats.win_rate) },
        { label: "PF", num: true, value: (r) => (r.stats.profit_factor === null ? "inf" : num(r.stats.profit_factor)) },
        { label: "Trades", num: true, value: (r) => String(r.stats.n_trades) },
      ]);
    const rows = sweep.rows.map((r, i) => Object.assign({ rank: i + 1 }, r));
    const shown = sweep.rows.length < sweep.combinations ? `, the best ${sweep.rows.length} shown (the sweep CSV has all)` : "";
    return el("div", { id: "sweep" }, el("h2", {}, `Sweep: ${sweep.combinations.toLocaleString("en-US")} combinations ranked by ${sweep.rank_by}${shown}`),
      table(columns, rows));
  }

  function windows(wf) {
    const metric = wf.rank_by;
    const names = wf.windows.length ? Object.keys(wf.windows[0].params) : [];
    const columns = [
      { label: "#", num: true, value: (w) => String(w.k) },
      { label: "In-sample", value: (w) => w.in_sample.first.slice(0, 10) + " .. " + w.in_sample.last.slice(0, 10) },
      { label: "Out-of-sample", value: (w) => w.out_of_sample.first.slice(0, 10) + " .. " + w.out_of_sample.last.slice(0, 10) },
      { label: "Chosen", value: (w) => names.map((n) => n + "=" + fixed(w.params[n])).join(" ") },
      { label: "IS " + metric, num: true, value: (w) => num(w.in_sample_stats[metric]) },
      { label: "OOS " + metric, num: true, value: (w) => num(w.out_of_sample_stats[metric]) },
      { label: "Change", num: true, value: (w) => num(w.degradation[metric]), cls: (w) => TB.cls(w.degradation[metric]) },
      { label: "DSR", num: true, value: (w) => (w.overfitting ? num(w.overfitting.deflated_sharpe.dsr) : "–") },
      { label: "PBO", num: true, value: (w) => (w.overfitting ? num(w.overfitting.pbo.pbo) : "–") },
    ];
    const s = wf.summary;
    return [
      el("h2", {}, `Walk-forward ${wf.train}/${wf.test}: ${wf.windows.length} windows, ${wf.combinations.toLocaleString("en-US")} combinations each`),
      el("div", { class: "cards", id: "wf-summary" },
        card("Mean DSR", num(s.mean_dsr)), card("Mean PBO", num(s.mean_pbo)),
        card("IS " + metric, num(s["in_sample_" + metric])), card("OOS " + metric, num(s["out_of_sample_" + metric])),
        card("Efficiency", pct(s.efficiency_pct, 0))),
      el("div", { id: "wf-windows" }, table(columns, wf.windows.map((w, i) => Object.assign({ k: i + 1 }, w)))),
      el("p", { class: "meaning" }, wf.meaning.degradation),
      el("p", { class: "meaning" }, wf.meaning.deflated_sharpe),
      el("p", { class: "meaning" }, wf.meaning.pbo),
    ];
  }

  function portfolio(p) {
    const rows = Object.entries(p.symbols).map(([symbol, s]) => Object.assign({ symbol }, s));
    return el("div", { id: "portfolio" }, el("h2", {}, "By symbol"), table([
      { label: "Symbol", value: (r) => r.symbol },
      { label: "Trades", num: true, value: (r) => String(r.n_trades) },
      { label: "P&L", num: true, value: (r) => TB.signed(r.pnl), cls: (r) => TB.cls(r.pnl) },
      { label: "Win rate", num: true, value: (r) => pct(r.win_rate) },
    ], rows), el("p", { class: "hint" }, `Buy signals ${p.entries.signals}: ${p.entries.opened} opened, ` +
      `${Object.values(p.entries.blocked).reduce((a, b) => a + b, 0)} blocked by risk checks, ${p.entries.rejected} refused, ${p.entries.ignored} ignored.`));
  }

  /* ------------------------------------------------------------------ recent jobs */

  async function loadJobs() {
    const jobs = await TB.api("/research/jobs");
    TB.replace("research-jobs", section("Recent jobs", table([
      { label: "Started", value: (j) => TB.time(j.started) },
      { label: "Job", wrap: true, value: (j) => el("a", { href: "?job=" + j.id, class: "job-link", onclick: (e) => { e.preventDefault(); history.replaceState(null, "", "?job=" + j.id); show(j.id).catch((x) => TB.toast(x.message, "error")); } }, j.title) },
      { label: "State", value: (j) => j.state + (j.state === "running" && j.total ? ` ${j.done}/${j.total}` : ""), cls: (j) => "state-" + j.state },
      { label: "By", value: (j) => j.by },
    ], jobs, "No research jobs yet.")));
    return jobs;
  }

  /* ------------------------------------------------------------------ the page */

  async function researchPage() {
    const status = await TB.api("/status");
    TB.showStatus(status);
    if (!lab.options) {
      lab.options = await TB.api("/research");
      window.tradebotResearch = lab; /* for tests and the curious */
      lab.form = buildForm(lab.options);
      TB.replace("research-note", lab.options.available ? el("div", {}) : el("p", { class: "banner-note" }, lab.options.why_not));
      TB.replace("research-form-box", el("div", {}, lab.form.form));
      TB.onResearch.push(heard);
      const jobs = await loadJobs();
      const wanted = new URLSearchParams(location.search).get("job");
      if (lab.options.running) follow(lab.options.running);
      else if (wanted) await show(wanted);
      else if (jobs.length) await show(jobs[0].id);
      return;
    }
  }

  TB.pages = TB.pages || {};
  TB.pages.research = [["research-note", "research-form-box", "research-progress", "research-result", "research-jobs"], researchPage];
})();
