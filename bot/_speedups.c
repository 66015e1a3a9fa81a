/*
 * bot._speedups: the sequential loops that numpy cannot vectorise, in C.
 *
 * Each function here has a pure-Python twin that defines what it does (the Supertrend in
 * bot/kernels.py, the backtest simulation in bot/backtest/engine.py, the JSON equity curve's
 * points in bot/backtest/report.py); the two give bit-identical results, which the tests check. Arrays travel through the buffer protocol
 * as C-contiguous float64 ("d") or int8 ("b"), so the build needs no numpy headers.
 * Callers allocate the outputs.
 *
 * The arithmetic is written in the same order as the Python reference, and setup.py builds
 * with -ffp-contract=off so no multiply-add is fused into one rounding step.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    void *data;
    Py_ssize_t n;
} array;

/* Borrow a 1-d contiguous buffer of format fmt ("d" float64 or "b" int8); 0 on success. */
static int
get_array(PyObject *obj, array *a, const char *fmt, int writable, const char *name)
{
    const char *kind = fmt[0] == 'd' ? "float64" : "int8";
    Py_ssize_t itemsize = fmt[0] == 'd' ? 8 : 1;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &a->view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %scontiguous %s array", name,
                     writable ? "writable " : "", kind);
        return -1;
    }
    const char *got = a->view.format ? a->view.format : "B";
    if (got[0] == '<' || got[0] == '=' || got[0] == '@') {
        got++;
    }
    if (strcmp(got, fmt) != 0 || a->view.itemsize != itemsize || a->view.ndim != 1) {
        PyBuffer_Release(&a->view);
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-d %s array", name, kind);
        return -1;
    }
    a->data = a->view.buf;
    a->n = a->view.len / itemsize;
    return 0;
}

static void
release_all(array *arrays, int count)
{
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&arrays[i].view);
    }
}

/* Borrow count buffers; fmts[i] gives each one's format, the last n_out are writable.
 * Those with same_len[i] must have the length of the first. */
static int
get_all(PyObject **objs, array *arrays, int count, int n_out, const char **names, const char *fmts,
        const char *same_len)
{
    for (int i = 0; i < count; i++) {
        char fmt[2] = {fmts[i], 0};
        if (get_array(objs[i], &arrays[i], fmt, i >= count - n_out, names[i]) != 0) {
            release_all(arrays, i);
            return -1;
        }
        if (same_len[i] == '1' && arrays[i].n != arrays[0].n) {
            release_all(arrays, i + 1);
            PyErr_Format(PyExc_ValueError, "%s: length differs from %s", names[i], names[0]);
            return -1;
        }
    }
    return 0;
}

/*
 * supertrend(high, low, close, period, multiplier, line, direction)
 * True range, ATR (RMA seeded by the mean of the first `period` true ranges), basic bands,
 * final bands with carry-over, direction and line, in one pass. Bars 0 .. period-2 get NaN.
 * Mirrors _supertrend_py in bot/kernels.py statement for statement.
 */
static PyObject *
sp_supertrend(PyObject *self, PyObject *args)
{
    PyObject *objs[5];
    Py_ssize_t period;
    double mult;
    if (!PyArg_ParseTuple(args, "OOOndOO:supertrend", &objs[0], &objs[1], &objs[2], &period, &mult,
                          &objs[3], &objs[4])) {
        return NULL;
    }
    if (period < 1) {
        PyErr_SetString(PyExc_ValueError, "supertrend: period must be at least 1");
        return NULL;
    }
    const char *names[5] = {"high", "low", "close", "line", "direction"};
    array a[5];
    if (get_all(objs, a, 5, 2, names, "ddddd", "11111") != 0) {
        return NULL;
    }
    const double *h = a[0].data, *l = a[1].data, *c = a[2].data;
    double *line = a[3].data, *dir = a[4].data;
    Py_ssize_t n = a[0].n;
    Py_BEGIN_ALLOW_THREADS
    const double p = (double)period;
    const Py_ssize_t start = period - 1;
    double total = 0.0, atr = 0.0, prev_u = 0.0, prev_d = 0.0, prev_line = NAN, c_prev = NAN;
    for (Py_ssize_t i = 0; i < n; i++) {
        double tr = h[i] - l[i];
        if (i > 0) {
            double x = fabs(h[i] - c_prev), y = fabs(l[i] - c_prev);
            if (x > tr) {
                tr = x;
            }
            if (y > tr) {
                tr = y;
            }
        }
        if (i < start) {
            total += tr;
            line[i] = NAN;
            dir[i] = NAN;
            c_prev = c[i];
            continue;
        }
        if (i == start) {
            total += tr;
            atr = total / p;
        }
        else {
            atr = atr + (tr - atr) / p;
        }
        double hl2 = (h[i] + l[i]) / 2.0, offset = mult * atr;
        double up = hl2 + offset, dn = hl2 - offset;
        /* comparisons with NaN (no previous close on bar 0) are false, as Pine's na */
        double d = (dn > prev_d || c_prev < prev_d) ? dn : prev_d;
        double u = (up < prev_u || c_prev > prev_u) ? up : prev_u;
        double trend;
        if (i == start) {
            trend = -1.0;
        }
        else if (prev_line == prev_u) {
            trend = c[i] > u ? 1.0 : -1.0;
        }
        else {
            trend = c[i] < d ? -1.0 : 1.0;
        }
        prev_line = trend == 1.0 ? d : u;
        line[i] = prev_line;
        dir[i] = trend;
        prev_u = u;
        prev_d = d;
        c_prev = c[i];
    }
    Py_END_ALLOW_THREADS
    release_all(a, 5);
    Py_RETURN_NONE;
}

/* Units to buy, as bot.risk.position_size computes them (statement for statement). */
static double
position_size(double equity, double cash, double entry, double stop, double risk_pct, double max_pos_pct,
              int crypto)
{
    if (equity <= 0 || entry <= 0 || !isfinite(entry)) {
        return 0.0;
    }
    double per_unit = fabs(entry - stop);
    double by_risk = per_unit > 0 ? equity * risk_pct / 100 / per_unit : INFINITY;
    double by_size = equity * max_pos_pct / 100 / entry;
    double by_cash = (0.0 > cash ? 0.0 : cash) / entry;
    double qty = by_risk;
    if (by_size < qty) {
        qty = by_size;
    }
    if (by_cash < qty) {
        qty = by_cash;
    }
    if (qty <= 0 || !isfinite(qty)) {
        return 0.0;
    }
    return crypto ? floor(qty / 1e-6) * 1e-6 : floor(qty + 1e-9);
}

enum { REASON_SIGNAL = 0, REASON_STOP = 1, REASON_TARGET = 2, REASON_END = 3, TRADE_FIELDS = 8 };

/*
 * simulate(open, high, low, close, signal, stop_hint, cash, commission, slippage, fixed_qty,
 *          stop_frac, target_frac, risk_pct, max_position_pct, crypto, equity, trades) -> n_trades
 * The long-only backtest loop; see _simulate_py in bot/backtest/engine.py for the rules.
 * trades receives TRADE_FIELDS doubles per trade: entry bar, exit bar, entry price, exit
 * price, qty, pnl, commission, exit reason.
 */
static PyObject *
sp_simulate(PyObject *self, PyObject *args)
{
    PyObject *objs[8];
    double cash, commission, slippage, fixed_qty, stop_frac, target_frac, risk_pct, max_pos_pct;
    int crypto;
    if (!PyArg_ParseTuple(args, "OOOOOOddddddddpOO:simulate", &objs[0], &objs[1], &objs[2], &objs[3],
                          &objs[4], &objs[5], &cash, &commission, &slippage, &fixed_qty, &stop_frac,
                          &target_frac, &risk_pct, &max_pos_pct, &crypto, &objs[6], &objs[7])) {
        return NULL;
    }
    const char *names[8] = {"open", "high", "low", "close", "signal", "stop_hint", "equity", "trades"};
    array a[8];
    if (get_all(objs, a, 8, 2, names, "ddddbddd", "11111010") != 0) {
        return NULL;
    }
    if (a[5].n != 0 && a[5].n != a[0].n) {
        release_all(a, 8);
        PyErr_SetString(PyExc_ValueError, "stop_hint: must be empty or as long as open");
        return NULL;
    }
    const double *o = a[0].data, *h = a[1].data, *l = a[2].data, *c = a[3].data, *hint = a[5].data;
    const signed char *signal = a[4].data;
    double *equity = a[6].data, *trades = a[7].data;
    const Py_ssize_t n = a[0].n, cap = a[7].n / TRADE_FIELDS;
    const int has_hint = a[5].n != 0;
    Py_ssize_t nt = 0;
    int overflow = 0;

    Py_BEGIN_ALLOW_THREADS
    double qty = 0.0, entry_px = 0.0, entry_comm = 0.0, stop = 0.0, target = INFINITY;
    Py_ssize_t entry_bar = -1;
    int want_entry = 0, want_exit = 0;

#define CLOSE_TRADE(price, reason)                                                   \
    do {                                                                             \
        double px_ = (price), value_ = qty * px_, comm_ = value_ * commission;       \
        cash = cash + (value_ - comm_);                                              \
        if (nt < cap) {                                                              \
            double *t_ = trades + nt * TRADE_FIELDS;                                 \
            t_[0] = (double)entry_bar;                                               \
            t_[1] = (double)i;                                                       \
            t_[2] = entry_px;                                                        \
            t_[3] = px_;                                                             \
            t_[4] = qty;                                                             \
            t_[5] = (px_ - entry_px) * qty - entry_comm - comm_;                     \
            t_[6] = entry_comm + comm_;                                              \
            t_[7] = (reason);                                                        \
        }                                                                            \
        else {                                                                       \
            overflow = 1;                                                            \
        }                                                                            \
        nt++;                                                                        \
        qty = 0.0;                                                                   \
    } while (0)

    for (Py_ssize_t i = 0; i < n; i++) {
        if (want_exit) {
            want_exit = 0;
            CLOSE_TRADE(o[i] * (1.0 - slippage), REASON_SIGNAL);
        }
        if (want_entry) {
            want_entry = 0;
            double px = o[i] * (1.0 + slippage);
            double suggested = has_hint ? hint[i - 1] : NAN;
            if (suggested > 0 && suggested < px) {
                stop = suggested;
            }
            else if (stop_frac > 0) {
                stop = px * (1.0 - stop_frac);
            }
            else {
                stop = 0.0;
            }
            target = target_frac > 0 ? px * (1.0 + target_frac) : INFINITY;
            double q = fixed_qty > 0
                           ? fixed_qty
                           : position_size(cash, cash / (1.0 + commission), px, stop, risk_pct, max_pos_pct, crypto);
            if (q > 0) {
                double value = q * px, comm = value * commission;
                cash = cash - (value + comm);
                qty = q;
                entry_bar = i;
                entry_px = px;
                entry_comm = comm;
            }
        }
        if (qty > 0) {
            if (i > entry_bar && o[i] <= stop) {
                CLOSE_TRADE(o[i] * (1.0 - slippage), REASON_STOP);
            }
            else if (i > entry_bar && o[i] >= target) {
                CLOSE_TRADE(o[i], REASON_TARGET);
            }
            else if (l[i] <= stop) {
                CLOSE_TRADE(stop * (1.0 - slippage), REASON_STOP);
            }
            else if (h[i] >= target) {
                CLOSE_TRADE(target, REASON_TARGET);
            }
        }
        if (i < n - 1) {
            if (signal[i] == 1 && qty == 0) {
                want_entry = 1;
            }
            else if (signal[i] == -1 && qty > 0) {
                want_exit = 1;
            }
        }
        else if (qty > 0) {
            CLOSE_TRADE(c[i] * (1.0 - slippage), REASON_END);
        }
        equity[i] = cash + qty * c[i];
    }
#undef CLOSE_TRADE
    Py_END_ALLOW_THREADS

    release_all(a, 8);
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "simulate: trades buffer too small");
        return NULL;
    }
    return PyLong_FromSsize_t(nt);
}

/* Two ASCII digits of v (0..99) at out. */
static void
two_digits(char *out, long long v)
{
    out[0] = (char)('0' + v / 10);
    out[1] = (char)('0' + v % 10);
}

static long long
floor_div(long long a, long long b)
{
    long long q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Days since 1970-01-01 -> "YYYY-MM-DD" (H. Hinnant's civil_from_days), as _dates in
 * bot/backtest/report.py. */
static void
civil_date(long long days, char *out)
{
    long long z = days + 719468;
    long long era = floor_div(z, 146097);
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    long long month = mp < 10 ? mp + 3 : mp - 9;
    long long year = yoe + era * 400 + (month <= 2);
    two_digits(out, (year / 100) % 100);
    two_digits(out + 2, year % 100);
    out[4] = '-';
    two_digits(out + 5, month);
    out[7] = '-';
    two_digits(out + 8, doy - (153 * mp + 2) / 5 + 1);
}

/* Borrow a 1-d contiguous buffer of integers of `itemsize` bytes; 0 on success. */
static int
get_ints(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
        return -1;
    }
    const char *f = view->format ? view->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') {
        f++;
    }
    int ok = view->ndim == 1 && view->itemsize == itemsize &&
             (itemsize == 8 ? (strcmp(f, "q") == 0 || strcmp(f, "l") == 0) : strcmp(f, "i") == 0);
    if (!ok) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-d int%d array", name, (int)(itemsize * 8));
        return -1;
    }
    return 0;
}

/*
 * json_curve(times, which, offsets, data) -> bytes
 * For each point i: '},{"time":"' ISO time of times[i] (int64 ns, whole seconds rounded down)
 * '","equity":' and the text of number which[i] (bytes data[offsets[k]:offsets[k+1]]), all
 * concatenated: _curve_points in bot/backtest/report.py, whose pyarrow path gives the same bytes.
 */
static PyObject *
sp_json_curve(PyObject *self, PyObject *args)
{
    PyObject *objs[4];
    if (!PyArg_ParseTuple(args, "OOOO:json_curve", &objs[0], &objs[1], &objs[2], &objs[3])) {
        return NULL;
    }
    Py_buffer tv, wv, ov, dv;
    if (get_ints(objs[0], &tv, 8, "times") != 0) {
        return NULL;
    }
    if (get_ints(objs[1], &wv, 8, "which") != 0) {
        PyBuffer_Release(&tv);
        return NULL;
    }
    if (get_ints(objs[2], &ov, 4, "offsets") != 0) {
        PyBuffer_Release(&tv);
        PyBuffer_Release(&wv);
        return NULL;
    }
    if (PyObject_GetBuffer(objs[3], &dv, PyBUF_SIMPLE) != 0) {
        PyBuffer_Release(&tv);
        PyBuffer_Release(&wv);
        PyBuffer_Release(&ov);
        return NULL;
    }
    PyObject *result = NULL;
    const long long *times = tv.buf, *which = wv.buf;
    const int *offsets = ov.buf;
    const char *data = dv.buf;
    Py_ssize_t n = tv.len / 8, m = ov.len / 4 - 1;
    static const char head[] = "},{\"time\":\"";
    static const char middle[] = "\",\"equity\":";
    const Py_ssize_t head_len = sizeof(head) - 1, middle_len = sizeof(middle) - 1;
    if (wv.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "json_curve: which and times differ in length");
        goto done;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long k = which[i];
        if (k < 0 || k >= m || offsets[k] < 0 || offsets[k + 1] < offsets[k] || offsets[k + 1] > dv.len) {
            PyErr_SetString(PyExc_ValueError, "json_curve: a number index or offset is out of range");
            goto done;
        }
        size += head_len + 20 + middle_len + (offsets[k + 1] - offsets[k]);
    }
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    long long last_day = 0;
    char date[10];
    int have_date = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long seconds = floor_div(times[i], 1000000000LL);
        long long day = floor_div(seconds, 86400);
        long long sod = seconds - day * 86400;
        if (!have_date || day != last_day) {
            civil_date(day, date);
            last_day = day;
            have_date = 1;
        }
        memcpy(out, head, head_len);
        out += head_len;
        memcpy(out, date, 10);
        out[10] = 'T';
        two_digits(out + 11, sod / 3600);
        out[13] = ':';
        two_digits(out + 14, sod / 60 % 60);
        out[16] = ':';
        two_digits(out + 17, sod % 60);
        out[19] = 'Z';
        out += 20;
        memcpy(out, middle, middle_len);
        out += middle_len;
        long long k = which[i];
        int len = offsets[k + 1] - offsets[k];
        memcpy(out, data + offsets[k], (size_t)len);
        out += len;
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&tv);
    PyBuffer_Release(&wv);
    PyBuffer_Release(&ov);
    PyBuffer_Release(&dv);
    return result;
}

static PyMethodDef methods[] = {
    {"supertrend", sp_supertrend, METH_VARARGS,
     "supertrend(high, low, close, period, multiplier, line, direction): Supertrend into line/direction."},
    {"simulate", sp_simulate, METH_VARARGS,
     "simulate(open, high, low, close, signal, stop_hint, cash, commission, slippage, fixed_qty, stop_frac, "
     "target_frac, risk_pct, max_position_pct, crypto, equity, trades) -> number of trades."},
    {"json_curve", sp_json_curve, METH_VARARGS,
     "json_curve(times, which, offsets, data) -> the equity curve's JSON points (report._curve_points)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bot._speedups", "C versions of the kernels in bot.kernels.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
