/*
 * items.c - a Queue's items as the bytes of a message, and back.
 *
 * Owns the three ways of carrying an item: bytes (any buffer in, bytes
 * out: the default), text (str, with encoding= and errors=; UTF-8 strict
 * takes the fast path) and objects (serializer=, any object with dumps
 * and loads, e.g. pickle).  What items_encode() returns stays valid and
 * unchanged without the GIL until items_release(): it holds a reference
 * or a buffer export, never a pointer into a mutable object alone.
 * It never touches a queue.
 */
#include "shmqpy.h"

#include <string.h>

static int is_utf8(PyObject *encoding)
{
	PyObject *codecs = PyImport_ImportModule("codecs");
	PyObject *info = NULL, *name = NULL;
	int yes = -1;

	if (codecs == NULL)
		return -1;
	info = PyObject_CallMethod(codecs, "lookup", "O", encoding);
	if (info)
		name = PyObject_GetAttrString(info, "name");
	if (name)
		yes = PyUnicode_Check(name) &&
		      PyUnicode_CompareWithASCIIString(name, "utf-8") == 0;
	Py_XDECREF(name);
	Py_XDECREF(info);
	Py_DECREF(codecs);
	return yes;
}

int items_setup(pyq_queue *q, PyObject *encoding, PyObject *errors,
		PyObject *serializer)
{
	/* __init__ again, after a failed one: start afresh. */
	Py_CLEAR(q->serializer);
	Py_CLEAR(q->dumps);
	Py_CLEAR(q->loads);
	Py_CLEAR(q->encoding);
	Py_CLEAR(q->errors);
	q->codec = PYQ_BYTES;
	if (serializer != Py_None) {
		if (encoding != Py_None) {
			PyErr_SetString(PyExc_ValueError,
					"give encoding or serializer, not "
					"both");
			return -1;
		}
		q->dumps = PyObject_GetAttrString(serializer, "dumps");
		q->loads = q->dumps ? PyObject_GetAttrString(serializer,
							     "loads")
				    : NULL;
		if (q->loads == NULL || !PyCallable_Check(q->dumps) ||
		    !PyCallable_Check(q->loads)) {
			PyErr_Clear();
			Py_CLEAR(q->dumps);
			Py_CLEAR(q->loads);
			PyErr_SetString(PyExc_TypeError,
					"serializer must have dumps() and "
					"loads(), as pickle has");
			return -1;
		}
		q->serializer = Py_NewRef(serializer);
		q->codec = PYQ_SERIAL;
		return 0;
	}
	if (encoding == Py_None) {
		if (errors != Py_None) {
			PyErr_SetString(PyExc_ValueError,
					"errors= needs an encoding");
			return -1;
		}
		q->codec = PYQ_BYTES;
		return 0;
	}
	if (!PyUnicode_Check(encoding) ||
	    (errors != Py_None && !PyUnicode_Check(errors))) {
		PyErr_SetString(PyExc_TypeError,
				"encoding and errors must be str");
		return -1;
	}
	int utf8 = is_utf8(encoding);       /* also: is it a codec at all */
	if (utf8 < 0)
		return -1;
	q->encoding = Py_NewRef(encoding);
	q->errors = errors == Py_None ? NULL : Py_NewRef(errors);
	q->codec = utf8 && (q->errors == NULL ||
			    PyUnicode_CompareWithASCIIString(q->errors,
							     "strict") == 0)
		   ? PYQ_UTF8 : PYQ_TEXT;
	return 0;
}

/* Points `it` at a bytes-like object's bytes, keeping what must be kept. */
static int from_buffer(PyObject *obj, struct pyq_item *it)
{
	if (PyBytes_CheckExact(obj)) {
		it->p = PyBytes_AS_STRING(obj);
		it->n = (size_t)PyBytes_GET_SIZE(obj);
		return 0;
	}
	if (PyObject_GetBuffer(obj, &it->view, PyBUF_SIMPLE) == 0) {
		it->has_view = 1;
		it->p = it->view.buf;
		it->n = (size_t)it->view.len;
		return 0;
	}
	if (!PyObject_CheckBuffer(obj))
		return -1;
	/* A buffer that is not contiguous: its bytes, in order. */
	PyErr_Clear();
	it->tmp = PyBytes_FromObject(obj);
	if (it->tmp == NULL)
		return -1;
	it->p = PyBytes_AS_STRING(it->tmp);
	it->n = (size_t)PyBytes_GET_SIZE(it->tmp);
	return 0;
}

/* The garbage collector cleared the Queue (tp_clear: it was in a
 * reference cycle) and code that still held it, a finalizer, uses it. */
static int cleared(pyq_queue *q)
{
	PyErr_Format(PyExc_ValueError,
		     "Queue %R was collected (cleared by the garbage "
		     "collector): its serializer is gone", q->name);
	return -1;
}

int items_encode(pyq_queue *q, PyObject *obj, struct pyq_item *it)
{
	Py_ssize_t n;

	it->has_view = 0;
	it->tmp = NULL;
	switch (q->codec) {
	case PYQ_BYTES:
		if (from_buffer(obj, it) == 0)
			return 0;
		PyErr_Format(PyExc_TypeError,
			     "a bytes-like item is required, not '%.100s'%s",
			     Py_TYPE(obj)->tp_name,
			     PyUnicode_Check(obj)
			     ? " (open the Queue with encoding='utf-8' to "
			       "put str)" : "");
		return -1;
	case PYQ_UTF8:
	case PYQ_TEXT:
		if (!PyUnicode_Check(obj)) {
			PyErr_Format(PyExc_TypeError,
				     "this Queue carries str (encoding=%R), "
				     "not '%.100s'", q->encoding,
				     Py_TYPE(obj)->tp_name);
			return -1;
		}
		if (q->codec == PYQ_UTF8) {
			/* The str keeps its UTF-8 form: no copy. */
			it->p = PyUnicode_AsUTF8AndSize(obj, &n);
			if (it->p == NULL)
				return -1;
			it->n = (size_t)n;
			return 0;
		}
		it->tmp = PyUnicode_AsEncodedString(
			obj, PyUnicode_AsUTF8(q->encoding),
			q->errors ? PyUnicode_AsUTF8(q->errors) : NULL);
		break;
	default:
		if (q->dumps == NULL)
			return cleared(q);
		it->tmp = PyObject_CallOneArg(q->dumps, obj);
		break;
	}
	if (it->tmp == NULL)
		return -1;
	PyObject *tmp = it->tmp;
	it->tmp = NULL;
	int rc = from_buffer(tmp, it);
	if (rc == 0 && it->tmp == NULL) {
		it->tmp = tmp;          /* keeps the bytes alive */
	} else {
		if (rc < 0)
			PyErr_Format(PyExc_TypeError,
				     "%s returned '%.100s', not bytes",
				     q->codec == PYQ_SERIAL ? "dumps()"
							    : "the codec",
				     Py_TYPE(tmp)->tp_name);
		Py_DECREF(tmp);
	}
	return rc;
}

void items_release(struct pyq_item *it)
{
	if (it->has_view)
		PyBuffer_Release(&it->view);
	it->has_view = 0;
	Py_CLEAR(it->tmp);
}

PyObject *items_decode(pyq_queue *q, const char *p, size_t n)
{
	PyObject *b, *obj;

	switch (q->codec) {
	case PYQ_BYTES:
		return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
	case PYQ_UTF8:
		return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, NULL);
	case PYQ_TEXT:
		return PyUnicode_Decode(p, (Py_ssize_t)n,
					PyUnicode_AsUTF8(q->encoding),
					q->errors ? PyUnicode_AsUTF8(q->errors)
						  : NULL);
	default:
		if (q->loads == NULL) {
			cleared(q);
			return NULL;
		}
		/* A copy: loads() may run code that uses this Queue. */
		b = PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
		if (b == NULL)
			return NULL;
		obj = PyObject_CallOneArg(q->loads, b);
		Py_DECREF(b);
		return obj;
	}
}
