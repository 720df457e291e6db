/* voxhost's onnxruntime custom ops (domain "ai.voxhost"):
 *
 *   Sin(x)                      sin, vectorised;
 *   Snake(x, alpha, inv_alpha)  x + inv_alpha * sin(alpha * x)^2 per channel of x [N, C, T]: the
 *                               Snake activation (BigVGAN/iSTFTNet) that Kokoro's graph spells
 *                               as five nodes, in one pass with the same float operations in the
 *                               same order (no FMA contraction: -ffp-contract=off), so the same
 *                               bits as those five nodes with this Sin.
 *
 * onnxruntime's own Sin kernel is scalar and runs on one thread: in Kokoro's decoder, 51 Snake
 * activations over tensors like [1, 128, 6601], it is 12.5% of a bark's call while the other
 * cores wait (bench/kokoro_kernels.py). This one is branch-free, so the compiler vectorises it
 * (AVX-512, AVX2 or SSE2, picked at load by target_clones), about 5x faster per node; Snake
 * saves the four elementwise passes around it as well.
 *
 * onnxruntime's Python wheel ships no C headers, and none is installable here, so this file
 * declares the part of the C ABI it uses itself: entries of the OrtApi function table by
 * position, and the first fields of OrtCustomOp. onnxruntime keeps both append-only (an entry
 * never moves; later OrtCustomOp fields are read only behind a version check), so positions
 * from any header stay valid in every later runtime. tests/engines/test_onnx_ops.py runs the op
 * through onnxruntime and checks it against numpy.
 *
 * Built by voxhost.engines.onnx_ops.library() with the system C compiler.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct OrtStatus OrtStatus;
typedef struct OrtValue OrtValue;
typedef struct OrtKernelContext OrtKernelContext;
typedef struct OrtKernelInfo OrtKernelInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtCustomOpDomain OrtCustomOpDomain;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef void OrtApi; /* a table of function pointers, read by position below */

typedef struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)(void);
} OrtApiBase;

/* OrtApi positions (onnxruntime_c_api.h, struct OrtApi, counting from 0). */
enum {
  API_CREATE_CUSTOM_OP_DOMAIN = 26,
  API_CUSTOM_OP_DOMAIN_ADD = 27,
  API_ADD_CUSTOM_OP_DOMAIN = 28,
  API_GET_TENSOR_MUTABLE_DATA = 51,
  API_GET_DIMENSIONS_COUNT = 61,
  API_GET_DIMENSIONS = 62,
  API_GET_TENSOR_SHAPE_ELEMENT_COUNT = 64,
  API_GET_TENSOR_TYPE_AND_SHAPE = 65,
  API_KERNEL_CONTEXT_GET_INPUT = 90,
  API_KERNEL_CONTEXT_GET_OUTPUT = 91,
  API_RELEASE_STATUS = 93,
  API_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99,
};

static void* const* api; /* the OrtApi table, once registered */
#define API(index, type) ((type)api[index])

typedef OrtStatus* (*CreateCustomOpDomainFn)(const char*, OrtCustomOpDomain**);
typedef OrtStatus* (*CustomOpDomainAddFn)(OrtCustomOpDomain*, const void*);
typedef OrtStatus* (*AddCustomOpDomainFn)(OrtSessionOptions*, OrtCustomOpDomain*);
typedef OrtStatus* (*GetTensorMutableDataFn)(OrtValue*, void**);
typedef OrtStatus* (*GetDimensionsCountFn)(const OrtTensorTypeAndShapeInfo*, size_t*);
typedef OrtStatus* (*GetDimensionsFn)(const OrtTensorTypeAndShapeInfo*, int64_t*, size_t);
typedef OrtStatus* (*GetTensorShapeElementCountFn)(const OrtTensorTypeAndShapeInfo*, size_t*);
typedef OrtStatus* (*GetTensorTypeAndShapeFn)(const OrtValue*, OrtTensorTypeAndShapeInfo**);
typedef OrtStatus* (*KernelContextGetInputFn)(const OrtKernelContext*, size_t, const OrtValue**);
typedef OrtStatus* (*KernelContextGetOutputFn)(OrtKernelContext*, size_t, const int64_t*, size_t, OrtValue**);
typedef void (*ReleaseStatusFn)(OrtStatus*);
typedef void (*ReleaseTensorTypeAndShapeInfoFn)(OrtTensorTypeAndShapeInfo*);

enum { ONNX_FLOAT = 1 };

/* The first fields of OrtCustomOp. `version` 1 tells onnxruntime to read none of the later
 * fields it gates by version; the two characteristics it reads in any version (IsCompatible). */
typedef struct CustomOpV1 {
  uint32_t version;
  void* (*CreateKernel)(const struct CustomOpV1*, const OrtApi*, const OrtKernelInfo*);
  const char* (*GetName)(const struct CustomOpV1*);
  const char* (*GetExecutionProviderType)(const struct CustomOpV1*);
  int (*GetInputType)(const struct CustomOpV1*, size_t);
  size_t (*GetInputTypeCount)(const struct CustomOpV1*);
  int (*GetOutputType)(const struct CustomOpV1*, size_t);
  size_t (*GetOutputTypeCount)(const struct CustomOpV1*);
  void (*KernelCompute)(void*, OrtKernelContext*);
  void (*KernelDestroy)(void*);
  int (*GetInputCharacteristic)(const struct CustomOpV1*, size_t);
  int (*GetOutputCharacteristic)(const struct CustomOpV1*, size_t);
  void* unused[32]; /* zero: room for the fields a later version would have */
} CustomOpV1;

/* sin(x) for |x| <= SIN_FAST_LIMIT: Cody-Waite reduction by pi/2 in three parts, then Cephes'
 * single-precision minimax polynomials on [-pi/4, pi/4]. Branch-free, so GCC vectorises the
 * loop; the rounding trick (adding 1.5 * 2^23) needs no SSE4.1. Within 2 ulp of sinf. */
#define SIN_FAST_LIMIT 8192.0f
#define BLOCK 1024

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void sin_block(const float* restrict x, float* restrict y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    const float j = (v * 0.636619772367581343f + 12582912.0f) - 12582912.0f;
    float r = v - j * 1.5703125f;
    r = r - j * 4.837512969970703125e-4f;
    r = r - j * 7.54978995489188216e-8f;
    const int q = (int)j;
    const float r2 = r * r;
    const float s = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    const float c = 1.0f - 0.5f * r2 +
                    r2 * r2 * (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    const float p = (q & 1) ? c : s;
    y[i] = (q & 2) ? -p : p;
  }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static int all_small(const float* x, size_t n) {
  int big = 0;
  for (size_t i = 0; i < n; i++) big |= !(fabsf(x[i]) <= SIN_FAST_LIMIT); /* NaN and inf too */
  return !big;
}

void voxhost_sin(const float* x, float* y, size_t n) {
  for (size_t start = 0; start < n; start += BLOCK) {
    const size_t len = n - start < BLOCK ? n - start : BLOCK;
    if (all_small(x + start, len)) {
      sin_block(x + start, y + start, len);
    } else {
      for (size_t i = start; i < start + len; i++) y[i] = sinf(x[i]);
    }
  }
}

static int failed(OrtStatus* status) {
  if (status == NULL) return 0;
  API(API_RELEASE_STATUS, ReleaseStatusFn)(status);
  return 1;
}

/* The input's dims (malloc'd, or NULL), its rank and element count. */
static int64_t* input_shape(OrtKernelContext* context, size_t index, const OrtValue** value, size_t* rank,
                            size_t* count) {
  OrtTensorTypeAndShapeInfo* info = NULL;
  int64_t* dims = NULL;
  if (failed(API(API_KERNEL_CONTEXT_GET_INPUT, KernelContextGetInputFn)(context, index, value)) ||
      failed(API(API_GET_TENSOR_TYPE_AND_SHAPE, GetTensorTypeAndShapeFn)(*value, &info)))
    return NULL;
  if (failed(API(API_GET_DIMENSIONS_COUNT, GetDimensionsCountFn)(info, rank)) ||
      (dims = malloc((*rank ? *rank : 1) * sizeof *dims)) == NULL ||
      failed(API(API_GET_DIMENSIONS, GetDimensionsFn)(info, dims, *rank)) ||
      failed(API(API_GET_TENSOR_SHAPE_ELEMENT_COUNT, GetTensorShapeElementCountFn)(info, count))) {
    free(dims);
    dims = NULL;
  }
  API(API_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO, ReleaseTensorTypeAndShapeInfoFn)(info);
  return dims;
}

static void sin_compute(void* kernel, OrtKernelContext* context) {
  (void)kernel;
  const OrtValue* input = NULL;
  OrtValue* output = NULL;
  size_t rank = 0, count = 0;
  int64_t* dims = input_shape(context, 0, &input, &rank, &count);
  float *x = NULL, *y = NULL;
  if (dims && !failed(API(API_KERNEL_CONTEXT_GET_OUTPUT, KernelContextGetOutputFn)(context, 0, dims, rank, &output)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)((OrtValue*)input, (void**)&x)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)(output, (void**)&y)))
    voxhost_sin(x, y, count);
  free(dims);
}

/* Snake over x [N, C, T] with alpha and inv_alpha of C values each (the graph's [1, C, 1]). The
 * fused graph only makes this node where those hold; anything else fills the output with NaN,
 * loud in every test, since a version-1 kernel has no error to return. */
static void snake(const float* x, const float* alpha, const float* inv_alpha, float* y,
                  size_t rows, size_t channels, size_t length) {
  float u[BLOCK], s[BLOCK];
  for (size_t row = 0; row < rows; row++) {
    const float a = alpha[row % channels], r = inv_alpha[row % channels];
    const float* xr = x + row * length;
    float* yr = y + row * length;
    for (size_t start = 0; start < length; start += BLOCK) {
      const size_t len = length - start < BLOCK ? length - start : BLOCK;
      for (size_t i = 0; i < len; i++) u[i] = a * xr[start + i];
      voxhost_sin(u, s, len);
      for (size_t i = 0; i < len; i++) yr[start + i] = xr[start + i] + r * (s[i] * s[i]);
    }
  }
}

static void snake_compute(void* kernel, OrtKernelContext* context) {
  (void)kernel;
  const OrtValue *input = NULL, *alpha = NULL, *inv_alpha = NULL;
  OrtValue* output = NULL;
  size_t rank = 0, count = 0, rank_a = 0, count_a = 0, rank_r = 0, count_r = 0;
  int64_t* dims = input_shape(context, 0, &input, &rank, &count);
  int64_t* dims_a = input_shape(context, 1, &alpha, &rank_a, &count_a);
  int64_t* dims_r = input_shape(context, 2, &inv_alpha, &rank_r, &count_r);
  float *x = NULL, *a = NULL, *r = NULL, *y = NULL;
  if (dims && dims_a && dims_r &&
      !failed(API(API_KERNEL_CONTEXT_GET_OUTPUT, KernelContextGetOutputFn)(context, 0, dims, rank, &output)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)((OrtValue*)input, (void**)&x)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)((OrtValue*)alpha, (void**)&a)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)((OrtValue*)inv_alpha, (void**)&r)) &&
      !failed(API(API_GET_TENSOR_MUTABLE_DATA, GetTensorMutableDataFn)(output, (void**)&y))) {
    const size_t channels = rank == 3 ? (size_t)dims[1] : 0;
    if (channels > 0 && count_a == channels && count_r == channels && count > 0) {
      snake(x, a, r, y, (size_t)dims[0] * channels, channels, (size_t)dims[2]);
    } else {
      for (size_t i = 0; i < count; i++) y[i] = NAN;
    }
  }
  free(dims);
  free(dims_a);
  free(dims_r);
}

static void* create_kernel(const CustomOpV1* op, const OrtApi* ort, const OrtKernelInfo* info) {
  (void)op, (void)ort, (void)info;
  return (void*)1; /* stateless; onnxruntime only needs a non-null handle */
}
static void destroy_kernel(void* kernel) { (void)kernel; }
static const char* sin_name(const CustomOpV1* op) { (void)op; return "Sin"; }
static const char* cpu_provider(const CustomOpV1* op) { (void)op; return NULL; /* the CPU */ }
static int float_type(const CustomOpV1* op, size_t index) { (void)op, (void)index; return ONNX_FLOAT; }
static size_t one(const CustomOpV1* op) { (void)op; return 1; }
static size_t three(const CustomOpV1* op) { (void)op; return 3; }
static const char* snake_name(const CustomOpV1* op) { (void)op; return "Snake"; }
static int required(const CustomOpV1* op, size_t index) { (void)op, (void)index; return 0; /* INPUT_OUTPUT_REQUIRED */ }

static const CustomOpV1 sin_op = {
    .version = 1,
    .CreateKernel = create_kernel,
    .GetName = sin_name,
    .GetExecutionProviderType = cpu_provider,
    .GetInputType = float_type,
    .GetInputTypeCount = one,
    .GetOutputType = float_type,
    .GetOutputTypeCount = one,
    .KernelCompute = sin_compute,
    .KernelDestroy = destroy_kernel,
    .GetInputCharacteristic = required,
    .GetOutputCharacteristic = required,
};

static const CustomOpV1 snake_op = {
    .version = 1,
    .CreateKernel = create_kernel,
    .GetName = snake_name,
    .GetExecutionProviderType = cpu_provider,
    .GetInputType = float_type,
    .GetInputTypeCount = three,
    .GetOutputType = float_type,
    .GetOutputTypeCount = one,
    .KernelCompute = snake_compute,
    .KernelDestroy = destroy_kernel,
    .GetInputCharacteristic = required,
    .GetOutputCharacteristic = required,
};

/* The domain outlives every session that uses it: made once, never released. */
static OrtCustomOpDomain* domain;

/* onnxruntime's entry point for SessionOptions.register_custom_ops_library. */
OrtStatus* RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* base) {
  api = (void* const*)base->GetApi(1);
  if (api == NULL) return NULL; /* nothing registered: a graph using the op then fails to load */
  if (domain == NULL) {
    OrtStatus* status = API(API_CREATE_CUSTOM_OP_DOMAIN, CreateCustomOpDomainFn)("ai.voxhost", &domain);
    if (status) return status;
    status = API(API_CUSTOM_OP_DOMAIN_ADD, CustomOpDomainAddFn)(domain, &sin_op);
    if (status) return status;
    status = API(API_CUSTOM_OP_DOMAIN_ADD, CustomOpDomainAddFn)(domain, &snake_op);
    if (status) return status;
  }
  return API(API_ADD_CUSTOM_OP_DOMAIN, AddCustomOpDomainFn)(options, domain);
}
