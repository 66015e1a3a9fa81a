/* The backtest report (`tradebot backtest --html`): metrics, the price chart with every trade,
   equity and drawdown in step with it, and the trade list (click a row to zoom onto that trade).
   Reads its data from the page itself: no server, no network. */
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const money = (v) => Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const stamp = (s) => new Date(s * 1000).toISOString().replace("T", " ").slice(0, 16);
  const el = (tag, attrs, ...kids) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) k.startsWith("on") ? node.addEventListener(k.slice(2), v) : node.setAttribute(k, v);
    for (const kid of kids.flat()) node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    return node;
  };

  const s = data.stats;
  const fmt = (v, digits, suffix) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(digits) + (suffix || ""));
  const metrics = [
    ["Final equity", money(s.final_equity)], ["Return", fmt(s.return_pct, 2, "%")], ["Sharpe", fmt(s.sharpe, 2)],
    ["Sortino", fmt(s.sortino, 2)], ["Max drawdown", fmt(s.max_drawdown_pct, 2, "%")], ["Win rate", fmt(s.win_rate, 2, "%")],
    ["Profit factor", s.profit_factor === null ? "inf" : fmt(s.profit_factor, 2)], ["Exposure", fmt(s.exposure_pct, 2, "%")],
    ["Trades", String(s.n_trades)],
  ];
  document.getElementById("metrics").append(...metrics.map(([label, value]) =>
    el("div", { class: "card" }, el("span", { class: "label" }, label), el("span", { class: "value" }, value))));

  /* The report follows the system's theme, as its stylesheet does. */
  const dark = !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  const price = new TradebotChart.PriceChart(document.getElementById("price"), data.price, { height: 460, dark });
  const charts = [price.chart];
  let equity = null;
  if (data.equity.length > 1) {
    equity = new TradebotChart.EquityChart(document.getElementById("equity"), document.getElementById("drawdown"), data.equity, dark);
    charts.push(equity.equity, equity.drawdown);
  }
  TradebotChart.link(...charts);
  price.chart.timeScale().fitContent();

  function zoom(trade) {
    const span = Math.max(trade.exit_time - trade.entry_time, 60);
    price.chart.timeScale().setVisibleRange({ from: trade.entry_time - span, to: trade.exit_time + span });
    document.getElementById("price").scrollIntoView({ behavior: "smooth", block: "center" });
  }

  const HEAD = ["#", "Entry", "Exit", "Entry price", "Exit price", "Qty", "P&L", "Return", "Exit reason"];
  /* Each cell carries its column's name: on a phone a row is a block of labelled cells (style.css). */
  const cell = (i, text, cls) => el("td", Object.assign({ "data-label": HEAD[i] }, cls ? { class: cls } : {}), text);
  const rows = data.trades.map((t, i) =>
    el("tr", { class: "trade", "data-index": String(i), onclick: () => zoom(t), title: "zoom onto this trade" },
      cell(0, String(i + 1)), cell(1, stamp(t.entry_time)), cell(2, stamp(t.exit_time)),
      cell(3, money(t.entry_price), "num"), cell(4, money(t.exit_price), "num"),
      cell(5, Number(t.qty).toLocaleString("en-US", { maximumFractionDigits: 6 }), "num"),
      cell(6, money(t.pnl), "num " + (t.pnl > 0 ? "up" : t.pnl < 0 ? "down" : "")),
      cell(7, t.return_pct.toFixed(2) + "%", "num"), cell(8, t.exit_reason)));
  const head = el("tr", {}, HEAD.map((h) => el("th", {}, h)));
  document.getElementById("trades").append(rows.length
    ? el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, rows)))
    : el("p", { class: "empty" }, "No trades."));

  window.tradebotReport = { data, price, equity, zoom };
})();
