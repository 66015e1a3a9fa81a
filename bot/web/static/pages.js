/* tradebot dashboard: one render function per page, each reading /api/v1 (see core.js). */
"use strict";

(function () {
  const { el, table, card, section, money, signed, pct, qty, time, cls } = TB;

  const symbolLink = (s) => el("a", { href: "/symbol/" + encodeURIComponent(s).replace("%2F", "/") }, s);

  /* ------------------------------------------------------------------ overview */

  function positionsTable(positions) {
    return table(
      [
        { label: "Symbol", value: (p) => symbolLink(p.symbol) },
        { label: "Qty", num: true, value: (p) => qty(p.qty) },
        { label: "Entry", num: true, value: (p) => money(p.avg_price) },
        { label: "Price", num: true, value: (p) => money(p.market_price) },
        { label: "P&L", num: true, value: (p) => signed(p.unrealized_pnl), cls: (p) => cls(p.unrealized_pnl) },
        { label: "%", num: true, value: (p) => pct(p.unrealized_pct), cls: (p) => cls(p.unrealized_pct) },
        { label: "Stop", num: true, value: (p) => money(p.stop_loss) },
        { label: "Target", num: true, value: (p) => money(p.take_profit) },
        { label: "Strategy", value: (p) => p.strategy },
        {
          label: "",
          value: (p) => el("button", { class: "small act", onclick: () => TB.act("/orders", { side: "sell", symbol: p.symbol, qty: "all" }) }, "Sell all"),
        },
      ],
      positions,
      "No open positions."
    );
  }

  function ordersTable(orders, empty) {
    return table(
      [
        { label: TB.clockLabel("Time"), value: (o) => time(o.created_at) },
        { label: "Symbol", value: (o) => symbolLink(o.symbol) },
        { label: "Side", value: (o) => o.side, cls: (o) => (o.side === "buy" ? "up" : "down") },
        { label: "Qty", num: true, value: (o) => qty(o.qty) },
        { label: "Status", value: (o) => o.status },
        { label: "Filled at", num: true, value: (o) => money(o.filled_avg_price) },
        { label: "Stop", num: true, value: (o) => money(o.stop_loss) },
        { label: "Target", num: true, value: (o) => money(o.take_profit) },
        { label: "Strategy", value: (o) => o.strategy },
        { label: "Reason", wrap: true, value: (o) => o.error || o.reason },
        {
          label: "",
          value: (o) => o.cancelable
            ? el("button", { class: "small act cancel-order", "data-order": o.client_order_id,
                onclick: () => TB.act("/orders/" + encodeURIComponent(o.client_order_id), undefined, "DELETE") }, "Cancel")
            : null,
        },
      ],
      orders,
      empty
    );
  }

  function eventsTable(events) {
    return table(
      [
        { label: TB.clockLabel("Time"), value: (e) => time(e.time) },
        { label: "Kind", value: (e) => e.kind, cls: (e) => "sev-" + e.severity },
        { label: "Message", wrap: true, value: (e) => e.message },
      ],
      events,
      "No events yet."
    );
  }

  function actionBar(status) {
    const symbol = el("input", { name: "symbol", placeholder: "AAPL", size: 8, required: true, list: "symbols" });
    const amount = el("input", { name: "qty", placeholder: "qty", size: 6, required: true, inputmode: "decimal" });
    const order = (side) => (event) => {
      event.preventDefault();
      TB.act("/orders", { side, symbol: symbol.value.trim(), qty: amount.value.trim() });
    };
    return el(
      "div",
      { class: "actions" },
      status.paused
        ? el("button", { id: "resume", class: "act", onclick: () => TB.act("/resume") }, "Resume")
        : el("button", { id: "pause", class: "act", onclick: () => TB.act("/pause") }, "Pause"),
      el("button", { id: "flatten", class: "act danger", onclick: () => TB.act("/flatten") }, "Flatten all"),
      el(
        "form",
        { class: "order", onsubmit: order("buy") },
        el("datalist", { id: "symbols" }, status.symbols.map((s) => el("option", { value: s }))),
        symbol,
        amount,
        el("button", { class: "act", type: "submit" }, "Buy"),
        el("button", { class: "act", type: "button", onclick: order("sell") }, "Sell")
      )
    );
  }

  let controlsPaused = null;
  async function overview() {
    const data = await TB.api("/overview");
    const s = data.status;
    TB.showStatus(s);
    TB.replace(
      "summary",
      el(
        "div",
        { class: "cards" },
        card("Equity", money(s.equity)),
        card("Today", signed(s.today_pnl), cls(s.today_pnl)),
        card("Cash", money(s.cash)),
        card("Positions", String(s.positions)),
        card("Open orders", String(s.open_orders)),
        card(TB.clockLabel("Last cycle"), time(s.last_cycle))
      )
    );
    if (controlsPaused !== s.paused) {  /* rebuilt only when it changes: typing is never wiped */
      controlsPaused = s.paused;
      TB.replace("controls", actionBar(s));
    }
    TB.replace("positions", section("Open positions", positionsTable(data.positions)));
    TB.replace("orders", section("Open orders", ordersTable(data.orders, "No open orders.")));
    const problems = Object.entries(s.data_problems);
    const stops = (s.protection || []).map((c) => [c.symbol, c.ok ? "ok" : c.state.toUpperCase(), c.stop === null ? "-" : money(c.stop), c.note]);
    if (s.protection_error) stops.push(["-", "not read", "-", s.protection_error]);
    TB.replace("health", el("div", {},
      problems.length ? section("Data problems (not trading these)", table(
        [{ label: "Symbol", value: (r) => r[0] }, { label: "Problem", value: (r) => r[1] }], problems)) : el("div", {}),
      stops.length ? section("Stops at the broker", table(
        [{ label: "Symbol", value: (r) => r[0] }, { label: "Stop", value: (r) => r[1] },
         { label: "At", value: (r) => r[2] }, { label: "How", value: (r) => r[3] }], stops)) : el("div", {})));
    TB.replace("alerts", section("Latest events", eventsTable(data.events)));
  }

  /* ------------------------------------------------------------------ symbol chart */

  /* Which strategy lines the chart draws: all but those the trader unticked (kept in this browser). */
  const HIDDEN_LINES = "tradebot.hiddenLines";
  const hiddenLines = () => { try { return JSON.parse(localStorage.getItem(HIDDEN_LINES) || "[]"); } catch (e) { return []; } };

  function lineChoice(labels) {
    const hidden = new Set(hiddenLines());
    const boxes = labels.map((label) => el("input", { type: "checkbox", value: label, checked: !hidden.has(label) }));
    const form = el("form", { class: "filters line-choice" }, el("span", { class: "label" }, "Lines:"),
      boxes.map((box) => el("label", {}, box, " " + box.value)));
    form.addEventListener("change", () => {
      const shown = boxes.filter((b) => b.checked).map((b) => b.value);
      const others = hiddenLines().filter((label) => !labels.includes(label));
      localStorage.setItem(HIDDEN_LINES, JSON.stringify(others.concat(boxes.filter((b) => !b.checked).map((b) => b.value))));
      priceChart.showLines(shown);
    });
    return form;
  }

  let priceChart = null;
  async function symbolPage() {
    const [status, data] = await Promise.all([TB.api("/status"), TB.api("/bars/" + TB.symbol)]);
    TB.showStatus(status);
    window.tradebotBars = data; /* what the chart draws: for tests and the curious */
    const labels = Object.keys(data.lines);
    if (!priceChart) {
      const box = el("div", { class: "chart", id: "price-chart" });
      TB.replace("chart-box", el("div", {}, labels.length ? lineChoice(labels) : null, box,
        el("p", { class: "hint" }, "Wheel or pinch to zoom, drag to pan. " + TB.clockLabel("Times in UTC") + ".")));
      priceChart = new TradebotChart.PriceChart(box, data, { visibleBars: 120, hidden: hiddenLines(), dark: TB.dark() });
      TB.onTheme.push((dark) => priceChart.theme(dark));
      window.tradebotPriceChart = priceChart; /* for tests and the curious */
    } else priceChart.update(data);
    const last = data.close[data.close.length - 1];
    const lines = Object.entries(data.lines).map(([label, values]) => card(label, money(values[values.length - 1])));
    TB.replace("symbol-cards", el("div", { class: "cards" }, card("Close", money(last)), card("Bars", String(data.time.length)),
      card("Timeframe", data.timeframe), lines));
    TB.replace("symbol-position", section("Position", data.position ? positionsTable([data.position]) : el("p", { class: "empty" }, "No position in " + data.symbol + ".")));
  }

  /* ------------------------------------------------------------------ equity */

  let equityChart = null;
  async function equityPage() {
    const [status, curve, pnl] = await Promise.all([TB.api("/status"), TB.api("/equity"), TB.api("/pnl")]);
    TB.showStatus(status);
    TB.replace("pnl", el("div", { class: "cards" },
      card("Equity", money(pnl.equity)), card("Return", pct(pnl.return_pct), cls(pnl.return_pct)),
      card("Today", signed(pnl.today_pnl), cls(pnl.today_pnl)), card("Realized today", signed(pnl.today_realized), cls(pnl.today_realized)),
      card("Unrealized", signed(pnl.unrealized), cls(pnl.unrealized)), card("Realized", signed(pnl.total_realized), cls(pnl.total_realized)),
      card("Sharpe", pnl.sharpe === null ? "–" : pnl.sharpe.toFixed(2)), card("Max drawdown", pct(pnl.max_drawdown_pct)),
      card("Win rate", pct(pnl.win_rate, 0)), card("Trades", String(pnl.trades))));
    if (pnl.sharpe === null && pnl.history) TB.replace("pnl-note", el("p", { class: "hint" }, "Sharpe: " + pnl.history));
    const points = curve.points.map((p) => ({ time: Math.floor(Date.parse(p.time) / 1000), equity: p.equity, drawdown_pct: p.drawdown_pct }));
    if (points.length < 2) {
      TB.replace("equity-box", el("p", { class: "empty" }, "Not enough equity history yet: a snapshot is taken every 5 minutes and after each fill."));
      return;
    }
    if (!equityChart) {
      const top = el("div", { class: "chart medium" }), bottom = el("div", { class: "chart small" });
      TB.replace("equity-box", el("div", {}, el("h2", {}, TB.clockLabel("Equity")), top, el("h2", {}, "Drawdown %"), bottom));
      equityChart = new TradebotChart.EquityChart(top, bottom, points, TB.dark());
      TB.onTheme.push((dark) => equityChart.theme(dark));
    } else equityChart.update(points);
  }

  /* ------------------------------------------------------------------ profit by day, week, month */

  const PERIODS = [["day", "Daily"], ["week", "Weekly"], ["month", "Monthly"]];
  const PERIOD_NAMES = { day: "days", week: "weeks", month: "months" };
  const PERIOD_COLUMN = { day: "Day", week: "Week", month: "Month" };
  let profitChart = null;
  const profitPeriod = () => {
    const wanted = new URLSearchParams(location.search).get("period");
    return PERIODS.some(([p]) => p === wanted) ? wanted : "day";
  };

  async function profitPage() {
    const period = profitPeriod();
    const [status, data] = await Promise.all([TB.api("/status"), TB.api("/profit?period=" + period)]);
    TB.showStatus(status);
    TB.replace("periods", el("div", { class: "periods" }, PERIODS.map(([p, label]) =>
      el("button", { type: "button", class: "small" + (p === period ? " selected" : ""), "data-period": p, onclick: () => {
        history.replaceState(null, "", "?period=" + p);
        TB.refreshSoon(0);
      } }, label))));
    const wins = data.periods.reduce((n, r) => n + r.wins, 0);
    TB.replace("profit-cards", el("div", { class: "cards" },
      card("Realized P&L, last " + data.periods.length + " " + PERIOD_NAMES[period], signed(data.pnl), cls(data.pnl)),
      card("Trades", String(data.trades)), card("Winning trades", String(wins))));
    const rows = data.periods.slice().reverse().map((r) => ({ time: Math.floor(Date.parse(r.start) / 1000), pnl: r.pnl }));
    if (!profitChart) {
      const box = el("div", { class: "chart medium", id: "profit-chart" });
      TB.replace("profit-box", el("div", {}, box, el("p", { class: "hint" }, "Realized: each closed trade counts on the " +
        "day, week (Monday to Sunday) or month its exit falls in, UTC" + (TB.simulated ? ", on the simulated clock" : "") + ".")));
      profitChart = new TradebotChart.ProfitChart(box, rows, TB.dark());
      TB.onTheme.push((dark) => profitChart.theme(dark));
      window.tradebotProfitChart = profitChart; /* for tests and the curious */
    } else profitChart.update(rows);
    TB.replace("rows", table([
      { label: PERIOD_COLUMN[period], value: (r) => r.label },
      { label: "P&L", num: true, value: (r) => signed(r.pnl), cls: (r) => cls(r.pnl) },
      { label: "Return", num: true, value: (r) => pct(r.return_pct), cls: (r) => cls(r.pnl) },
      { label: "Trades", num: true, value: (r) => String(r.trades) },
      { label: "Wins", num: true, value: (r) => String(r.wins) },
      { label: "Equity at start", num: true, value: (r) => money(r.start_equity) },
    ], data.periods, "No periods."));
  }

  /* ------------------------------------------------------------------ log viewer */

  const LEVELS = [["DEBUG", "all"], ["INFO", "info and above"], ["WARNING", "warnings and errors"], ["ERROR", "errors only"]];
  const log = { after: 0, busy: false, again: false, timer: null, level: null, box: null };

  async function loadLogs() {
    if (log.busy) { log.again = true; return; }
    log.busy = true;
    try {
      const level = log.level.value;
      const data = await TB.api("/logs?limit=1000&level=" + level + "&after=" + log.after);
      if (level !== log.level.value) return; /* the filter changed meanwhile: that load starts over */
      const atBottom = log.box.scrollTop + log.box.clientHeight >= log.box.scrollHeight - 4;
      log.box.append(...data.lines.map((l) => el("span", { class: "line level-" + l.level, "data-seq": String(l.seq) },
        TB.time(l.time).slice(0, 19) + " " + l.level + " " + l.logger + ": " + l.message)));
      while (log.box.childElementCount > data.kept) log.box.firstElementChild.remove();
      if (!log.box.childElementCount) log.box.replaceChildren(el("span", { class: "empty" }, "No log lines at this level yet."));
      else log.box.querySelectorAll(".empty").forEach((e) => e.remove());
      log.after = data.last_seq;
      if (atBottom) log.box.scrollTop = log.box.scrollHeight;
      TB.replace("log-note", el("p", { class: "hint" }, "The last " + data.kept + " lines this process logged (kept in memory, " +
        "secrets masked as in the log files), newest at the bottom, live. Times: the wall clock, UTC."));
    } finally {
      log.busy = false;
      if (log.again) { log.again = false; loadLogs().catch((e) => TB.toast(e.message, "error")); }
    }
  }

  async function logsPage() {
    if (!log.box) {
      log.level = el("select", { name: "level" }, LEVELS.map(([value, text]) => el("option", { value }, text)));
      log.level.value = "INFO";
      log.level.addEventListener("change", () => {
        log.after = 0;
        log.box.replaceChildren();
        loadLogs().catch((e) => TB.toast(e.message, "error"));
      });
      log.box = el("pre", { class: "log", id: "log-lines" });
      TB.replace("filters", el("form", { class: "filters", id: "logs-filters" }, el("label", {}, "Level ", log.level)));
      TB.replace("rows", el("div", {}, log.box));
      /* Live: the WebSocket says when lines were written; one read a second at most. */
      TB.onLog.push(() => {
        if (!log.timer) log.timer = setTimeout(() => { log.timer = null; loadLogs().catch((e) => TB.toast(e.message, "error")); }, 1000);
      });
    }
    const [status] = await Promise.all([TB.api("/status"), loadLogs()]);
    TB.showStatus(status);
  }

  /* ------------------------------------------------------------------ trades and orders */

  function filterForm(id, fields, onchange) {
    const form = el("form", { class: "filters", id }, fields.map(([name, label, options]) =>
      options
        ? el("label", {}, label, " ", el("select", { name }, options.map(([value, text]) => el("option", { value }, text))))
        : el("label", {}, label, " ", el("input", { name, size: 10, placeholder: "any", type: name === "since" || name === "until" ? "date" : "text" }))));
    form.addEventListener("input", () => onchange());
    form.addEventListener("submit", (e) => { e.preventDefault(); onchange(); });
    return form;
  }

  function query(form) {
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (String(value).trim()) params.set(key, String(value).trim());
    return params.toString();
  }

  async function tablePage(kind, fields, render) {
    const status = await TB.api("/status");
    TB.showStatus(status);
    let form = document.getElementById(kind + "-filters");
    if (!form) {
      form = filterForm(kind + "-filters", fields, () => TB.refreshSoon(0));
      TB.replace("filters", el("div", {}, form, el("a", { id: "csv", class: "button", href: "#" }, "Export CSV")));
    }
    const q = query(form);
    document.getElementById("csv").href = "/api/v1/" + kind + ".csv" + (q ? "?" + q : "");
    const rows = await TB.api("/" + kind + (q ? "?" + q : ""));
    TB.replace("rows", render(rows));
  }

  const trades = () => tablePage("trades", [["symbol", "Symbol"], ["strategy", "Strategy"], ["result", "Result", [["", "any"], ["win", "wins"], ["loss", "losses"]]], ["since", "From"], ["until", "Until"]], (rows) =>
    table([
      { label: TB.clockLabel("Exit"), value: (t) => time(t.exit_time) },
      { label: "Symbol", value: (t) => symbolLink(t.symbol) },
      { label: "Qty", num: true, value: (t) => qty(t.qty) },
      { label: "Entry", num: true, value: (t) => money(t.entry_price) },
      { label: "Exit price", num: true, value: (t) => money(t.exit_price) },
      { label: "P&L", num: true, value: (t) => signed(t.pnl), cls: (t) => cls(t.pnl) },
      { label: "%", num: true, value: (t) => pct(t.return_pct), cls: (t) => cls(t.pnl) },
      { label: "Why", value: (t) => t.exit_reason },
      { label: "Strategy", value: (t) => t.strategy },
      { label: TB.clockLabel("Entered"), value: (t) => time(t.entry_time) },
    ], rows, "No closed trades match."));

  const orders = () => tablePage("orders", [["symbol", "Symbol"], ["side", "Side", [["", "any"], ["buy", "buy"], ["sell", "sell"]]],
    ["status", "Status", [["", "any"], ["filled", "filled"], ["new", "new"], ["accepted", "accepted"], ["canceled", "canceled"], ["rejected", "rejected"], ["pending_submit", "pending"], ["submit_failed", "failed"]]],
    ["strategy", "Strategy"]], (rows) => ordersTable(rows, "No orders match."));

  /* ------------------------------------------------------------------ strategies, risk, events */

  async function strategies() {
    const [status, list] = await Promise.all([TB.api("/status"), TB.api("/strategies")]);
    TB.showStatus(status);
    TB.replace("list", el("div", {}, list.map((s) => el("section", { class: "strategy" },
      el("h2", {}, s.label), el("p", {}, s.description),
      el("div", { class: "cards" }, card("P&L", signed(s.pnl), cls(s.pnl)), card("Trades", String(s.trades)), card("Win rate", pct(s.win_rate, 0)),
        card(TB.clockLabel("Last signal"), s.last_signal_time ? time(s.last_signal_time) : "none")),
      s.last_signal ? el("p", {}, "Last signal: " + s.last_signal) : null,
      table([{ label: "Parameter", value: (p) => p.name }, { label: "Value", num: true, value: (p) => String(p.value) },
        { label: "Default", num: true, value: (p) => String(p.default) }, { label: "Bounds", value: (p) => (p.minimum ?? "") + " .. " + (p.maximum ?? "") },
        { label: "Meaning", value: (p) => p.help }], s.params),
      s.errors.length ? el("ul", { class: "errors" }, s.errors.map((e) => el("li", {}, e))) : el("p", { class: "ok" }, "No errors.")))));
  }

  function gauge(label, used, limit) {
    const share = limit > 0 ? Math.max(0, Math.min(1, used / limit)) : 0;
    return el("div", { class: "gauge" }, el("span", { class: "label" }, label + ": " + used.toFixed(2) + " of " + limit),
      el("div", { class: "bar" }, el("div", { class: "fill" + (share > 0.8 ? " hot" : ""), style: "width:" + (share * 100).toFixed(1) + "%" })));
  }

  async function risk() {
    const [status, r] = await Promise.all([TB.api("/status"), TB.api("/risk")]);
    TB.showStatus(status);
    TB.replace("gauges", el("div", { class: "gauges" },
      gauge("Portfolio risk % (loss if every stop is hit)", r.portfolio_risk_pct, r.max_portfolio_risk_pct),
      gauge("Daily loss %", Math.max(0, r.day_loss_pct), r.daily_loss_limit_pct),
      gauge("Open trades", r.open_trades, r.max_open_trades)));
    const change = (limit) => {
      const value = prompt(`New value for ${limit.name} (${limit.minimum} to ${limit.maximum}):`, String(limit.value));
      if (value !== null && value.trim()) TB.act("/risk", { name: limit.name, value: Number(value) });
    };
    TB.replace("limits", table([
      { label: "Limit", value: (l) => l.name }, { label: "Value", num: true, value: (l) => String(l.value) },
      { label: "Default", num: true, value: (l) => String(l.default) }, { label: "Bounds", value: (l) => l.minimum + " .. " + l.maximum },
      { label: "Source", value: (l) => l.source },
      { label: "", value: (l) => el("button", { class: "small act", onclick: () => change(l) }, "Change") },
    ], r.limits));
  }

  let eventsFilter = null;
  async function events() {
    const status = await TB.api("/status");
    TB.showStatus(status);
    if (!eventsFilter) {
      const kinds = await TB.api("/events/kinds");
      eventsFilter = filterForm("events-filters", [["kind", "Kind", [["", "all"], ...kinds.map((k) => [k, k.replaceAll("_", " ")])]]], () => TB.refreshSoon(0));
      TB.replace("filters", eventsFilter);
    }
    const q = query(eventsFilter);
    TB.replace("rows", eventsTable(await TB.api("/events?limit=200" + (q ? "&" + q : ""))));
  }

  const PAGES = {
    overview: [["summary", "controls", "health", "positions", "orders", "alerts"], overview],
    symbol: [["symbol-cards", "chart-box", "symbol-position"], symbolPage],
    equity: [["pnl", "pnl-note", "equity-box"], equityPage],
    profit: [["periods", "profit-cards", "profit-box", "rows"], profitPage],
    logs: [["filters", "log-note", "rows"], logsPage],
    trades: [["filters", "rows"], trades],
    orders: [["filters", "rows"], orders],
    strategies: [["list"], strategies],
    risk: [["gauges", "limits"], risk],
    events: [["filters", "rows"], events],
  };

  const [slots, render] = PAGES[TB.page] || (TB.pages || {})[TB.page] || [[], async () => {}];
  for (const slot of slots) document.getElementById("app").append(el("div", { id: slot }));
  TB.refresh = render;
  render().catch((e) => TB.toast(e.message, "error")).finally(() => TB.connect());
})();
