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
        { label: "Reason", value: (o) => o.error || o.reason },
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
        { label: "Message", value: (e) => e.message },
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

  let priceChart = null;
  async function symbolPage() {
    const [status, data] = await Promise.all([TB.api("/status"), TB.api("/bars/" + TB.symbol)]);
    TB.showStatus(status);
    if (!priceChart) {
      const box = el("div", { class: "chart", id: "price-chart" });
      TB.replace("chart-box", el("div", {}, box, el("p", { class: "hint" }, "Wheel or pinch to zoom, drag to pan. " + TB.clockLabel("Times in UTC") + ".")));
      priceChart = new TradebotChart.PriceChart(box, data, { visibleBars: 120 });
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
      card("Realized", signed(pnl.total_realized), cls(pnl.total_realized)), card("Unrealized", signed(pnl.unrealized), cls(pnl.unrealized)),
      card("Sharpe", pnl.sharpe === null ? "–" : pnl.sharpe.toFixed(2)), card("Max drawdown", pct(pnl.max_drawdown_pct)),
      card("Win rate", pct(pnl.win_rate * 100, 0)), card("Trades", String(pnl.trades))));
    if (pnl.sharpe === null && pnl.history) TB.replace("pnl-note", el("p", { class: "hint" }, "Sharpe: " + pnl.history));
    const points = curve.points.map((p) => ({ time: Math.floor(Date.parse(p.time) / 1000), equity: p.equity, drawdown_pct: p.drawdown_pct }));
    if (points.length < 2) {
      TB.replace("equity-box", el("p", { class: "empty" }, "Not enough equity history yet: a snapshot is taken every 5 minutes and after each fill."));
      return;
    }
    if (!equityChart) {
      const top = el("div", { class: "chart medium" }), bottom = el("div", { class: "chart small" });
      TB.replace("equity-box", el("div", {}, el("h2", {}, TB.clockLabel("Equity")), top, el("h2", {}, "Drawdown %"), bottom));
      equityChart = new TradebotChart.EquityChart(top, bottom, points);
    } else equityChart.update(points);
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
      el("div", { class: "cards" }, card("P&L", signed(s.pnl), cls(s.pnl)), card("Trades", String(s.trades)), card("Win rate", pct(s.win_rate * 100, 0)),
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
    trades: [["filters", "rows"], trades],
    orders: [["filters", "rows"], orders],
    strategies: [["list"], strategies],
    risk: [["gauges", "limits"], risk],
    events: [["filters", "rows"], events],
  };

  const [slots, render] = PAGES[TB.page] || [[], async () => {}];
  for (const slot of slots) document.getElementById("app").append(el("div", { id: slot }));
  TB.refresh = render;
  render().catch((e) => TB.toast(e.message, "error")).finally(() => TB.connect());
})();
