/*
 * bot._speedups: the sequential loops that numpy cannot vectorise, in C.
 *
 * Each function here has a pure-Python twin in bot/kernels.py that defines what it does;
 * the two must give bit-identical results (tests/test_supertrend.py checks parity).
 * Arrays travel through the buffer protocol as C-contiguous float64 ("d"), so the build
 * needs no numpy headers. Callers (bot/kernels.py) allocate the outputs.
 *
 * The arithmetic is written in the same order as the Python reference, with no
 * multiply-then-add that a compiler could fuse into one rounding step.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    double *data;
    Py_ssize_t n;
} darray;

/* Borrow a float64 buffer from obj; writable if asked. Returns 0 on success. */
static int
get_darray(PyObject *obj, darray *a, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &a->view, flags) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %scontiguous float64 array", name,
                     writable ? "writable " : "");
        return -1;
    }
    const char *fmt = a->view.format ? a->view.format : "B";
    if (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') {
        fmt++;
    }
    if (strcmp(fmt, "d") != 0 || a->view.itemsize != 8 || a->view.ndim != 1) {
        PyBuffer_Release(&a->view);
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-d float64 array", name);
        return -1;
    }
    a->data = (double *)a->view.buf;
    a->n = a->view.shape ? a->view.shape[0] : a->view.len / 8;
    return 0;
}

static void
release_all(darray *arrays, int count)
{
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(&arrays[i].view);
    }
}

/* Borrow count buffers (the last n_out writable) of one common length. */
static int
get_all(PyObject **objs, darray *arrays, int count, int n_out, const char **names)
{
    for (int i = 0; i < count; i++) {
        if (get_darray(objs[i], &arrays[i], i >= count - n_out, names[i]) != 0) {
            release_all(arrays, i);
            return -1;
        }
        if (arrays[i].n != arrays[0].n) {
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
    darray a[5];
    if (get_all(objs, a, 5, 2, names) != 0) {
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

static PyMethodDef methods[] = {
    {"supertrend", sp_supertrend, METH_VARARGS,
     "supertrend(high, low, close, period, multiplier, line, direction): Supertrend into line/direction."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "bot._speedups", "C versions of the kernels in bot.kernels.", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
