/* tradebot chart component on TradingView's Lightweight Charts (window.LightweightCharts, v4):
   candles, the strategies' lines (green where price is above, red below: the Supertrend band),
   entries and exits, the position's entry, stop and target as price lines; equity and drawdown.
   Zoom with the wheel or a pinch, pan by dragging. Used by the dashboard and by the
   self-contained backtest report (`tradebot backtest --html`), so it needs nothing else. */
"use strict";

(function () {
  const GREEN = "#1f9d55", RED = "#d73a49", BLUE = "#1f6feb", GREY = "#6a737d";

  /* The colours that follow the page's theme (style.css: --card, --fg; the grid a shade off). */
  function themeOptions(dark) {
    const grid = dark ? "#21262d" : "#f0f2f4";
    return {
      layout: { background: { color: dark ? "#161b22" : "#ffffff" }, textColor: dark ? "#e6edf3" : "#24292f", fontSize: 12 },
      grid: { vertLines: { color: grid }, horzLines: { color: grid } },
    };
  }

  function baseOptions(container, height, dark) {
    return {
      width: container.clientWidth || 600,
      height: container.clientHeight || height,
      ...themeOptions(dark),
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

  /* A strategy line as TradingView draws the Supertrend (plot.style_linebr): green where the close
     is at or above it (support), red where below (resistance), and broken where it changes side:
     no segment joins the last bar of one side to the first bar of the other. Lightweight Charts
     colours each segment with its starting point's colour, and joins a line across whitespace, so
     the last point before a change of side (or before a gap) starts a transparent segment. */
  const NONE = "rgba(0,0,0,0)";
  function linePoints(data, values) {
    const side = data.time.map((t, i) => {
      const v = values[i];
      return v === null || v === undefined || !isFinite(v) ? 0 : data.close[i] >= v ? 1 : -1;
    });
    return data.time.map((t, i) => {
      if (!side[i]) return { time: t };
      const broken = i + 1 < side.length && side[i + 1] !== side[i];
      return { time: t, value: values[i], color: broken ? NONE : side[i] > 0 ? GREEN : RED };
    });
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
    this.chart = LightweightCharts.createChart(container, baseOptions(container, options.height || 420, options.dark));
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
    this.hidden = new Set(options.hidden || []);
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
        this.lines[label] = this.chart.addLineSeries({
          color: GREEN, lineWidth: 2, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
          visible: !this.hidden.has(label),
        });
      }
      /* Always the whole line: a point's colour depends on its successor, so the forming bar
         changing side recolours the bar before it, which an append-only update cannot reach. */
      this.lines[label].setData(linePoints(data, values));
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

  PriceChart.prototype.theme = function (dark) {
    this.chart.applyOptions(themeOptions(dark));
  };

  /* Show only the strategy lines named in ``labels`` (the symbol page's choice). */
  PriceChart.prototype.showLines = function (labels) {
    const wanted = new Set(labels);
    this.hidden = new Set(Object.keys(this.lines).filter((label) => !wanted.has(label)));
    for (const [label, series] of Object.entries(this.lines)) series.applyOptions({ visible: wanted.has(label) });
  };

  /* Equity above, drawdown below, time scales kept in step. points: [{time (s), equity, drawdown_pct}] */
  function EquityChart(equityBox, drawdownBox, points, dark) {
    this.equity = LightweightCharts.createChart(equityBox, baseOptions(equityBox, 280, dark));
    this.drawdown = LightweightCharts.createChart(drawdownBox, baseOptions(drawdownBox, 140, dark));
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

  EquityChart.prototype.theme = function (dark) {
    this.equity.applyOptions(themeOptions(dark));
    this.drawdown.applyOptions(themeOptions(dark));
  };

  /* Profit per period as bars, green for a gain and red for a loss. rows: [{time (s), pnl}], oldest first. */
  function ProfitChart(container, rows, dark) {
    this.chart = LightweightCharts.createChart(container, baseOptions(container, 260, dark));
    this.chart.applyOptions({ timeScale: { timeVisible: false } });
    this.bars = this.chart.addHistogramSeries({ priceLineVisible: false, lastValueVisible: false, base: 0 });
    resizeWith(container, this.chart);
    this.update(rows);
  }

  ProfitChart.prototype.update = function (rows) {
    this.bars.setData(rows.map((r) => ({ time: r.time, value: r.pnl, color: r.pnl > 0 ? GREEN : r.pnl < 0 ? RED : GREY })));
    this.chart.timeScale().fitContent();
    this.count = rows.length;
  };

  ProfitChart.prototype.theme = function (dark) {
    this.chart.applyOptions(themeOptions(dark));
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

  window.TradebotChart = { PriceChart, EquityChart, ProfitChart, link, dedupe, baseOptions, themeOptions };
})();
