/* tradebot chart component on TradingView's Lightweight Charts (window.LightweightCharts, v4):
   candles, the strategies' lines (green where price is above, red below: the Supertrend band),
   entries and exits, the position's entry, stop and target as price lines; equity and drawdown.
   Zoom with the wheel or a pinch, pan by dragging. Used by the dashboard and by the
   self-contained backtest report (`tradebot backtest --html`), so it needs nothing else. */
"use strict";

(function () {
  const GREEN = "#1f9d55", RED = "#d73a49", BLUE = "#1f6feb", GREY = "#6a737d";

  function baseOptions(container, height) {
    return {
      width: container.clientWidth || 600,
      height: container.clientHeight || height,
      layout: { background: { color: "#ffffff" }, textColor: "#24292f", fontSize: 12 },
      grid: { vertLines: { color: "#f0f2f4" }, horzLines: { color: "#f0f2f4" } },
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 3 },
      rightPriceScale: { borderVisible: false },
      crosshair: { mode: 0 },
      handleScroll: true,
      handleScale: true,
    };
  }

  function resizeWith(container, chart) {
    if (!window.ResizeObserver) return;
    new ResizeObserver(() => {
      if (container.clientWidth && container.clientHeight) chart.applyOptions({ width: container.clientWidth, height: container.clientHeight });
    }).observe(container);
  }

  function candles(data) {
    return data.time.map((t, i) => ({ time: t, open: data.open[i], high: data.high[i], low: data.low[i], close: data.close[i] }));
  }

  /* A strategy line in two halves, as TradingView draws the Supertrend: green where the close is
     above it (support), red where below (resistance), with a gap where it flips. */
  function lineHalves(data, values) {
    const up = [], down = [];
    data.time.forEach((t, i) => {
      const v = values[i];
      const ok = v !== null && v !== undefined && isFinite(v);
      const above = ok && data.close[i] >= v;
      up.push(ok && above ? { time: t, value: v } : { time: t });
      down.push(ok && !above ? { time: t, value: v } : { time: t });
    });
    return [up, down];
  }

  function markers(list) {
    return list
      .slice()
      .sort((a, b) => a.time - b.time)
      .map((m) =>
        m.kind === "entry"
          ? { time: m.time, position: "belowBar", color: GREEN, shape: "arrowUp", text: m.text || "buy" }
          : { time: m.time, position: "aboveBar", color: m.kind === "exit_win" ? BLUE : RED, shape: "arrowDown", text: m.text || "sell" }
      );
  }

  /* A price chart. data: {time[], open[], high[], low[], close[], lines: {label: values[]},
     markers: [{time, price, kind}], position: {avg_price, stop_loss, take_profit} | null} */
  function PriceChart(container, data, options) {
    options = options || {};
    this.chart = LightweightCharts.createChart(container, baseOptions(container, options.height || 420));
    this.levels = [];
    this.candles = this.chart.addCandlestickSeries({
      upColor: GREEN, downColor: RED, borderUpColor: GREEN, borderDownColor: RED, wickUpColor: GREEN, wickDownColor: RED,
      /* The price scale also takes in the position's stop and target, so they are always on screen. */
      autoscaleInfoProvider: (original) => {
        const info = original();
        if (!info || !info.priceRange || !this.levels.length) return info;
        const range = info.priceRange;
        return Object.assign({}, info, { priceRange: {
          minValue: Math.min(range.minValue, ...this.levels), maxValue: Math.max(range.maxValue, ...this.levels) } });
      },
    });
    this.lines = {};
    this.priceLines = [];
    this.lastTime = null;
    this.count = 0;
    resizeWith(container, this.chart);
    this.update(data);
    if (options.visibleBars && data.time.length > options.visibleBars) {
      this.chart.timeScale().setVisibleLogicalRange({ from: data.time.length - options.visibleBars, to: data.time.length + 3 });
    } else this.chart.timeScale().fitContent();
  }

  PriceChart.prototype.update = function (data) {
    const bars = candles(data);
    const appendOnly = this.lastTime !== null && bars.length && bars[0].time <= this.lastTime;
    if (appendOnly) {
      /* Keep the trader's zoom and scroll: only the forming and new bars are updated. */
      for (const bar of bars) if (bar.time >= this.lastTime) this.candles.update(bar);
    } else {
      this.candles.setData(bars);
    }
    for (const [label, values] of Object.entries(data.lines || {})) {
      if (!this.lines[label]) {
        const style = { lineWidth: 2, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false };
        this.lines[label] = [
          this.chart.addLineSeries(Object.assign({ color: GREEN }, style)),
          this.chart.addLineSeries(Object.assign({ color: RED }, style)),
        ];
      }
      lineHalves(data, values).forEach((points, half) => {
        const series = this.lines[label][half];
        if (appendOnly) {
          for (const p of points) if (p.time >= this.lastTime) series.update(p);
        } else series.setData(points);
      });
    }
    this.candles.setMarkers(markers(data.markers || []));
    for (const line of this.priceLines) this.candles.removePriceLine(line);
    this.priceLines = [];
    const p = data.position;
    this.levels = p ? [p.stop_loss, p.take_profit].filter((v) => v !== null && v !== undefined) : [];
    if (p) {
      const add = (price, color, title) =>
        price !== null && price !== undefined &&
        this.priceLines.push(this.candles.createPriceLine({ price, color, lineWidth: 1, lineStyle: 2, axisLabelVisible: true, title }));
      add(p.avg_price, GREY, "entry");
      add(p.stop_loss, RED, "stop");
      add(p.take_profit, GREEN, "target");
    }
    if (bars.length) this.lastTime = bars[bars.length - 1].time;
    this.count = bars.length;
  };

  /* Equity above, drawdown below, time scales kept in step. points: [{time (s), equity, drawdown_pct}] */
  function EquityChart(equityBox, drawdownBox, points) {
    this.equity = LightweightCharts.createChart(equityBox, baseOptions(equityBox, 280));
    this.drawdown = LightweightCharts.createChart(drawdownBox, baseOptions(drawdownBox, 140));
    this.equitySeries = this.equity.addAreaSeries({ lineColor: BLUE, topColor: "rgba(31,111,235,0.25)", bottomColor: "rgba(31,111,235,0.02)", lineWidth: 2 });
    this.drawdownSeries = this.drawdown.addAreaSeries({ lineColor: RED, topColor: "rgba(215,58,73,0.05)", bottomColor: "rgba(215,58,73,0.35)", lineWidth: 1, invertFilledArea: true });
    resizeWith(equityBox, this.equity);
    resizeWith(drawdownBox, this.drawdown);
    link(this.equity, this.drawdown);
    this.update(points);
  }

  EquityChart.prototype.update = function (points) {
    const unique = dedupe(points);
    this.equitySeries.setData(unique.map((p) => ({ time: p.time, value: p.equity })));
    this.drawdownSeries.setData(unique.map((p) => ({ time: p.time, value: -p.drawdown_pct })));
  };

  function dedupe(points) {
    const out = [];
    for (const p of points) {
      if (out.length && out[out.length - 1].time >= p.time) out[out.length - 1] = Object.assign({}, p, { time: out[out.length - 1].time });
      else out.push(p);
    }
    return out;
  }

  /* Keep several charts' visible time ranges in step (zoom one, the others follow). */
  function link(...charts) {
    let busy = false;
    for (const chart of charts) {
      chart.timeScale().subscribeVisibleTimeRangeChange((range) => {
        if (busy || !range) return;
        busy = true;
        for (const other of charts) if (other !== chart) { try { other.timeScale().setVisibleRange(range); } catch (e) { /* no data there */ } }
        busy = false;
      });
    }
  }

  window.TradebotChart = { PriceChart, EquityChart, link, dedupe };
})();
