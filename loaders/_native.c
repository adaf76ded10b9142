/* loaders._native: the two per-pixel hot spots of the host-decoding path, and the per-file stat
 * of a dataset scan, in C (optional: the callers fall back to simplejpeg/PIL, torch and os.stat
 * without it).
 *
 * 1. decode(): only a region of a JPEG, at a DCT scale, with libjpeg-turbo.
 *
 * A RandomResizedCrop keeps part of the image; a full decode pays for every pixel. libjpeg-turbo
 * (>= 1.5) can skip that: rows above the region are entropy-decoded only
 * (jpeg_skip_scanlines: no IDCT, no upsampling, no colour conversion), rows below are never
 * touched (the decode stops after the region), and columns outside it skip IDCT and colour
 * conversion (jpeg_crop_scanline). Same IDCT (JDCT_ISLOW) and fancy upsampling as simplejpeg's
 * and PIL's defaults; the test suite checks the pixels against a full decode.
 *
 *   decode(data, num, top, left, height, width, flip=False) -> bytearray: height x width x 3 RGB,
 *   mirrored left-right when flip
 *
 * Coordinates are in the image decoded at scale num/8 (num in 1..8: the IDCT scalings
 * TurboJPEG, hence simplejpeg's min_width/min_height, choose from). Raises
 * ValueError for data libjpeg rejects or a colour space it cannot turn into RGB (CMYK/YCCK:
 * callers send those to PIL). The GIL is released while decoding.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#define MARGIN 4 /* columns decoded beyond each side of the region (see decode) */

struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int warned;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    /* A warning (level -1: corrupt or truncated data, which libjpeg would paper over with grey)
     * fails the decode, as simplejpeg's strict mode does; trace messages (level >= 0) do not. */
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    if (level < 0 && !err->warned) {
        err->warned = 1;
        (*cinfo->err->format_message)(cinfo, err->message);
    }
}

static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer src;
    int num, top, left, height, width, flip = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*iiiii|p", &src, &num, &top, &left, &height, &width, &flip))
        return NULL;
    if (num < 1 || num > 8 || top < 0 || left < 0 || height <= 0 || width <= 0) {
        PyBuffer_Release(&src);
        PyErr_SetString(PyExc_ValueError, "decode: the scale is num/8 with num in 1..8, and the region must not be empty");
        return NULL;
    }

    struct jpeg_decompress_struct cinfo;
    struct error_mgr jerr;
    /* volatile: read after a longjmp back into this frame */
    PyObject *volatile out = NULL;
    const char *fail = NULL;
    volatile int rows = 0;

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = on_error;
    jerr.pub.emit_message = on_message;
    jerr.message[0] = 0;
    jerr.warned = 0;
    jpeg_create_decompress(&cinfo);

    /* The header pass is cheap; the output buffer is allocated with the GIL held. */
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&src);
        Py_XDECREF((PyObject *)out);
        PyErr_Format(PyExc_ValueError, "libjpeg: %s", jerr.message);
        return NULL;
    }
    jpeg_mem_src(&cinfo, (const unsigned char *)src.buf, (unsigned long)src.len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        fail = "CMYK/YCCK JPEG: decode it with PIL";
    } else {
        cinfo.out_color_space = JCS_RGB;
        cinfo.scale_num = (unsigned int)num;
        cinfo.scale_denom = 8;
        cinfo.dct_method = JDCT_ISLOW;
        cinfo.do_fancy_upsampling = TRUE;
        jpeg_calc_output_dimensions(&cinfo);
        if ((JDIMENSION)top + (JDIMENSION)height > cinfo.output_height ||
            (JDIMENSION)left + (JDIMENSION)width > cinfo.output_width)
            fail = "region outside the scaled image";
    }
    if (fail) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&src);
        PyErr_Format(PyExc_ValueError, "decode: %s", fail);
        return NULL;
    }
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)height * width * 3);
    unsigned char *line = malloc((size_t)cinfo.output_width * 3);
    if (out == NULL || line == NULL) {
        free(line);
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&src);
        Py_XDECREF((PyObject *)out);
        return out == NULL ? NULL : PyErr_NoMemory();
    }

    Py_BEGIN_ALLOW_THREADS
    if (setjmp(jerr.jump)) {
        rows = -1;
    } else {
        jpeg_start_decompress(&cinfo);
        /* MARGIN more columns each side: fancy upsampling treats the cropped row's ends as
         * image edges, which changes the outermost column of a chroma-subsampled image. */
        JDIMENSION lo = left > MARGIN ? (JDIMENSION)(left - MARGIN) : 0;
        JDIMENSION hi = (JDIMENSION)(left + width + MARGIN);
        if (hi > cinfo.output_width)
            hi = cinfo.output_width;
        JDIMENSION x0 = lo, row_width = hi - lo;
        if (x0 != 0 || row_width != cinfo.output_width)
            jpeg_crop_scanline(&cinfo, &x0, &row_width); /* widens to whole iMCU columns */
        if (top > 0)
            jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
        unsigned char *dst = (unsigned char *)PyByteArray_AS_STRING((PyObject *)out);
        JSAMPROW row = line;
        while (rows < height && jpeg_read_scanlines(&cinfo, &row, 1) == 1) {
            unsigned char *to = dst + (size_t)rows * width * 3, *from = line + (size_t)(left - x0) * 3;
            if (!flip) {
                memcpy(to, from, (size_t)width * 3);
            } else { /* mirrored: pixel k of the row goes to width - 1 - k */
                for (int k = 0; k < width; k++)
                    memcpy(to + (size_t)(width - 1 - k) * 3, from + (size_t)k * 3, 3);
            }
            rows++;
        }
        /* Rows below the region are never decoded: stop here. */
        jpeg_abort_decompress(&cinfo);
    }
    Py_END_ALLOW_THREADS

    free(line);
    jpeg_destroy_decompress(&cinfo);
    PyBuffer_Release(&src);
    if (rows != height || jerr.warned) {
        Py_DECREF((PyObject *)out);
        if (rows < 0 || jerr.warned)
            PyErr_Format(PyExc_ValueError, "libjpeg: %s", jerr.message);
        else
            PyErr_Format(PyExc_ValueError, "libjpeg: image ended after %d of %d rows", rows, height);
        return NULL;
    }
    return (PyObject *)out;
}

static PyObject *scaled_size(PyObject *self, PyObject *args) {
    /* (width, height) of the image decoded at num/8, rounded up as libjpeg (and TurboJPEG) do. */
    int width, height, num;
    (void)self;
    if (!PyArg_ParseTuple(args, "iii", &width, &height, &num))
        return NULL;
    return Py_BuildValue("(ii)", (width * num + 7) / 8, (height * num + 7) / 8);
}

/* 2. apply_lut(src, dst, lut, channels): dst[i] = lut[i % channels][src[i]] over a contiguous
 * uint8 buffer whose innermost axis is the channel (NHWC); lut holds channels x 256 values of
 * 2 or 4 bytes, dst len(src) of them. With lut = the shared normalize() of 0..255 per channel
 * this IS the normalisation, to the bit, in one pass (read 1 byte, write 2 or 4 per value) with
 * the GIL released, where torch's eager ops make four passes through float32. */
/* The lookup for one value type T; three tables unrolled for RGB (the channel of value i is i % 3). */
#define LUT_LOOP(T)                                                        \
    do {                                                                   \
        const T *t = (const T *)lut.buf;                                   \
        T *out = (T *)dst.buf;                                             \
        if (channels == 3) {                                               \
            const T *t0 = t, *t1 = t + 256, *t2 = t + 512;                 \
            for (Py_ssize_t i = 0; i < n; i += 3) {                        \
                out[i] = t0[in[i]];                                        \
                out[i + 1] = t1[in[i + 1]];                                \
                out[i + 2] = t2[in[i + 2]];                                \
            }                                                              \
        } else {                                                           \
            for (Py_ssize_t i = 0; i < n; i++)                             \
                out[i] = t[in[i]];                                         \
        }                                                                  \
    } while (0)

static PyObject *apply_lut(PyObject *self, PyObject *args) {
    Py_buffer src, dst, lut;
    int channels;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*y*i", &src, &dst, &lut, &channels))
        return NULL;
    Py_ssize_t n = src.len, size = (channels == 1 || channels == 3) ? lut.len / (channels * 256) : 0;
    if (!(size == 2 || size == 4) || lut.len != channels * 256 * size || dst.len != n * size || n % channels) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        PyBuffer_Release(&lut);
        PyErr_SetString(PyExc_ValueError, "apply_lut: channels 1 or 3, lut = channels x 256 values of 2 or 4 bytes, "
                                          "dst = len(src) such values");
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)src.buf;
    Py_BEGIN_ALLOW_THREADS
    if (size == 2)
        LUT_LOOP(uint16_t);
    else
        LUT_LOOP(uint32_t);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&lut);
    Py_RETURN_NONE;
}

/* 3. stat_names(dirpath, names, sizes, mtimes) -> int: one stat per name in the folder, as
 * os.stat(f"{dirpath}/{name}") does (following symlinks), into two int64 buffers of len(names):
 * st_size and st_mtime_ns. Returns the index of the first name that is a folder (the caller
 * walks that class), else -1. A name that cannot be stat'ed raises os.stat's OSError (its
 * errno subclass, naming the file). An ImageNet scan stats 1.33 M files: ~3.5 s as a Python
 * loop of os.stat (issue #16; threads are slower: the GIL), here fstatat relative to one open
 * folder, with the GIL released. */
static PyObject *stat_names(PyObject *self, PyObject *args) {
    PyObject *dirpath, *list, *names = NULL, *dir_bytes = NULL, *keep = NULL, *result = NULL;
    Py_buffer sizes = {0}, mtimes = {0};
    const char **cnames = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "UO!w*w*", &dirpath, &PyList_Type, &list, &sizes, &mtimes))
        return NULL;
    names = PyList_AsTuple(list); /* the names stay alive, whatever happens to the list meanwhile */
    Py_ssize_t n = names ? PyTuple_GET_SIZE(names) : 0;
    if (names == NULL)
        goto done;
    if (sizes.len != n * (Py_ssize_t)sizeof(int64_t) || mtimes.len != sizes.len) {
        PyErr_SetString(PyExc_ValueError, "stat_names: sizes and mtimes must hold len(names) int64 values");
        goto done;
    }
    if (!PyUnicode_FSConverter(dirpath, &dir_bytes) || (keep = PyList_New(0)) == NULL ||
        (cnames = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(*cnames))) == NULL) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) { /* file-system encoding, as os.stat: UTF-8, surrogates escaped */
        PyObject *name = PyTuple_GET_ITEM(names, i), *b = NULL;
        Py_ssize_t len;
        const char *c = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL; /* no copy for ASCII */
        if (c == NULL) { /* not str (os.stat's TypeError), or an undecodable name kept as surrogates */
            PyErr_Clear();
            if (!PyUnicode_FSConverter(name, &b) || PyList_Append(keep, b) < 0) {
                Py_XDECREF(b);
                goto done;
            }
            Py_DECREF(b); /* alive in `keep` */
            c = PyBytes_AS_STRING(b);
            len = PyBytes_GET_SIZE(b);
        }
        if ((Py_ssize_t)strlen(c) != len) {
            PyErr_SetString(PyExc_ValueError, "stat_names: embedded null byte");
            goto done;
        }
        cnames[i] = c;
    }
    int64_t *size_out = (int64_t *)sizes.buf, *mtime_out = (int64_t *)mtimes.buf;
    Py_ssize_t folder = -1, failed = -1;
    int err = 0;
    Py_BEGIN_ALLOW_THREADS
#ifdef O_PATH /* search permission is all os.stat of a path inside needs; O_PATH asks no more */
    int fd = n ? open(PyBytes_AS_STRING(dir_bytes), O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
#else
    int fd = n ? open(PyBytes_AS_STRING(dir_bytes), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
#endif
    if (n && fd < 0) { /* what os.stat of the first file would meet */
        err = errno;
        failed = 0;
    }
    for (Py_ssize_t i = 0; fd >= 0 && i < n; i++) {
        struct stat st;
        if (fstatat(fd, cnames[i], &st, 0) != 0) {
            err = errno;
            failed = i;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            folder = i;
            break;
        }
        size_out[i] = (int64_t)st.st_size;
#ifdef __APPLE__
        mtime_out[i] = (int64_t)st.st_mtimespec.tv_sec * 1000000000 + st.st_mtimespec.tv_nsec;
#else
        mtime_out[i] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
#endif
    }
    if (fd >= 0)
        close(fd);
    Py_END_ALLOW_THREADS
    if (failed >= 0) { /* os.stat's error, naming the path it would have named */
        PyObject *path = PyUnicode_FromFormat("%U/%S", dirpath, PyTuple_GET_ITEM(names, failed));
        if (path != NULL) {
            errno = err;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
            Py_DECREF(path);
        }
        goto done;
    }
    result = PyLong_FromSsize_t(folder);
done:
    PyMem_Free(cnames);
    Py_XDECREF(keep);
    Py_XDECREF(dir_bytes);
    Py_XDECREF(names);
    PyBuffer_Release(&sizes);
    PyBuffer_Release(&mtimes);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_VARARGS,
     "decode(data, num, top, left, height, width, flip=False) -> bytearray: the height x width x 3 "
     "RGB region at (top, left) of the JPEG decoded at scale num/8, mirrored if flip (see the source)."},
    {"scaled_size", scaled_size, METH_VARARGS, "scaled_size(width, height, num) -> (w, h) at scale num/8"},
    {"apply_lut", apply_lut, METH_VARARGS,
     "apply_lut(src, dst, lut, channels): dst[i] = lut[i % channels][src[i]]; src uint8 (channels "
     "innermost), lut channels x 256 values of dst's 2- or 4-byte type (see the module source)."},
    {"stat_names", stat_names, METH_VARARGS,
     "stat_names(dirpath, names, sizes, mtimes) -> int: os.stat of each name in dirpath into the int64 "
     "buffers sizes (st_size) and mtimes (st_mtime_ns); the index of the first folder, or -1."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Region + DCT-scaled JPEG decode (libjpeg-turbo), the LUT normalisation and a folder's stats (see loaders/_native.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL)
        PyModule_AddIntConstant(m, "LIBJPEG_TURBO_VERSION_NUMBER",
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
                                LIBJPEG_TURBO_VERSION_NUMBER
#else
                                0
#endif
        );
    return m;
}
