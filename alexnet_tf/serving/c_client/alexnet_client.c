/* A client of the export that no Python touches: it loads the SavedModel through TensorFlow's C API the way
 * tensorflow_model_server does (tag "serve", the serving_default SignatureDef), sends one encoded image and prints
 * the top-5 as "rank<TAB>class<TAB>score<TAB>label" lines. The signature's tensor names are read from the
 * MetaGraphDef that the loader returns (a minimal protobuf wire-format walk), not hard-coded.
 *
 * Build against the TensorFlow wheel (its headers and libraries are in site-packages/tensorflow):
 *   TF=$(python -c "import os, tensorflow; print(os.path.dirname(tensorflow.__file__))")
 *   gcc -O2 -o alexnet_client alexnet_client.c -I"$TF/include" -L"$TF" -l:libtensorflow_cc.so.2 \
 *       -l:libtensorflow_framework.so.2 -Wl,-rpath,"$TF"
 * Run: ./alexnet_client EXPORT_VERSION_DIR photo.jpg
 * Exit status: 0 done, 2 bad arguments or unreadable file, 3 TensorFlow refused (its message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

#define SIGNATURE "serving_default"

/* One length-delimited field of a protobuf message. */
typedef struct {
  const uint8_t *data;
  size_t size;
} Bytes;

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t byte = *(*p)++;
    *value |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return 1;
  }
  return 0;
}

/* The next field of `message` after `*cursor`: its number and, for length-delimited fields, its bytes. Returns 0 at
 * the end or on malformed input; other wire types are skipped. */
static int next_field(Bytes message, size_t *cursor, uint32_t *number, Bytes *value) {
  const uint8_t *p = message.data + *cursor, *end = message.data + message.size;
  while (p < end) {
    uint64_t key, length;
    if (!read_varint(&p, end, &key)) return 0;
    *number = (uint32_t)(key >> 3);
    switch (key & 7) {
      case 0: if (!read_varint(&p, end, &length)) return 0; value->size = 0; break;
      case 1: p += 8; value->size = 0; break;
      case 5: p += 4; value->size = 0; break;
      case 2:
        if (!read_varint(&p, end, &length) || length > (uint64_t)(end - p)) return 0;
        value->data = p;
        value->size = (size_t)length;
        p += length;
        break;
      default: return 0;
    }
    if (p > end) return 0;
    *cursor = (size_t)(p - message.data);
    if ((key & 7) == 2) return 1;
  }
  return 0;
}

static int equals(Bytes bytes, const char *text) {
  return bytes.size == strlen(text) && memcmp(bytes.data, text, bytes.size) == 0;
}

/* A map<string, V> entry (key = field 1, value = field 2) of `message`'s field `field` whose key is `key`. */
static int map_value(Bytes message, uint32_t field, const char *key, Bytes *value) {
  size_t cursor = 0;
  uint32_t number;
  Bytes entry;
  while (next_field(message, &cursor, &number, &entry)) {
    if (number != field) continue;
    size_t inner = 0;
    uint32_t inner_number;
    Bytes part, found_key = {0}, found_value = {0};
    while (next_field(entry, &inner, &inner_number, &part)) {
      if (inner_number == 1) found_key = part;
      if (inner_number == 2) found_value = part;
    }
    if (equals(found_key, key)) {
      *value = found_value;
      return 1;
    }
  }
  return 0;
}

/* The tensor name ("op:index") of SignatureDef `signature`'s input (field 1) or output (field 2) `name`: TensorInfo's
 * field 1. */
static int tensor_name(Bytes signature, uint32_t field, const char *name, char *out, size_t out_size) {
  Bytes info, part;
  size_t cursor = 0;
  uint32_t number;
  if (!map_value(signature, field, name, &info)) return 0;
  while (next_field(info, &cursor, &number, &part)) {
    if (number == 1 && part.size < out_size) {
      memcpy(out, part.data, part.size);
      out[part.size] = '\0';
      return 1;
    }
  }
  return 0;
}

static TF_Output graph_output(TF_Graph *graph, char *name) {
  TF_Output output = {NULL, 0};
  char *colon = strrchr(name, ':');
  if (colon != NULL) {
    *colon = '\0';
    output.index = atoi(colon + 1);
  }
  output.oper = TF_GraphOperationByName(graph, name);
  return output;
}

static char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  fseek(f, 0, SEEK_END);
  long length = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *data = malloc(length > 0 ? (size_t)length : 1);
  *size = data != NULL && length >= 0 ? fread(data, 1, (size_t)length, f) : 0;
  fclose(f);
  return data;
}

static int fail(TF_Status *status, const char *what) {
  fprintf(stderr, "alexnet_client: %s: %s\n", what, TF_Message(status));
  return 3;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s EXPORT_VERSION_DIR IMAGE_FILE\n", argv[0]);
    return 2;
  }
  size_t image_size;
  char *image = read_file(argv[2], &image_size);
  if (image == NULL) {
    fprintf(stderr, "alexnet_client: cannot read %s\n", argv[2]);
    return 2;
  }
  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Buffer *meta_graph = TF_NewBuffer();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph, meta_graph, status);
  if (TF_GetCode(status) != TF_OK) return fail(status, "loading the SavedModel");

  /* MetaGraphDef field 5: map<string, SignatureDef> signature_def; SignatureDef 1: inputs, 2: outputs. */
  Bytes signature, meta = {meta_graph->data, meta_graph->length};
  char names[4][256];
  const char *outputs[] = {"top_k_classes", "top_k_scores", "top_k_labels"};
  if (!map_value(meta, 5, SIGNATURE, &signature) || !tensor_name(signature, 1, "image_bytes", names[0], 256)) {
    fprintf(stderr, "alexnet_client: no %s signature with an image_bytes input in %s\n", SIGNATURE, argv[1]);
    return 2;
  }
  for (int i = 0; i < 3; i++) {
    if (!tensor_name(signature, 2, outputs[i], names[i + 1], 256)) {
      fprintf(stderr, "alexnet_client: the %s signature has no %s output\n", SIGNATURE, outputs[i]);
      return 2;
    }
  }
  TF_Output input = graph_output(graph, names[0]), fetches[3];
  for (int i = 0; i < 3; i++) fetches[i] = graph_output(graph, names[i + 1]);

  int64_t dims[1] = {1};
  TF_Tensor *request = TF_AllocateTensor(TF_STRING, dims, 1, sizeof(TF_TString));
  TF_TString *bytes = (TF_TString *)TF_TensorData(request);
  TF_StringInit(bytes);
  TF_StringCopy(bytes, image, image_size);
  TF_Tensor *results[3] = {NULL, NULL, NULL};
  TF_SessionRun(session, NULL, &input, &request, 1, fetches, results, 3, NULL, 0, NULL, status);
  if (TF_GetCode(status) != TF_OK) return fail(status, "running " SIGNATURE);

  const int64_t *classes = (const int64_t *)TF_TensorData(results[0]);
  const float *scores = (const float *)TF_TensorData(results[1]);
  const TF_TString *labels = (const TF_TString *)TF_TensorData(results[2]);
  int64_t k = TF_Dim(results[0], 1);
  for (int64_t i = 0; i < k; i++) {
    printf("%lld\t%lld\t%.8g\t%.*s\n", (long long)(i + 1), (long long)classes[i], scores[i],
           (int)TF_StringGetSize(&labels[i]), TF_StringGetDataPointer(&labels[i]));
  }
  for (int i = 0; i < 3; i++) TF_DeleteTensor(results[i]);
  TF_StringDealloc(bytes);
  TF_DeleteTensor(request);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteBuffer(meta_graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  free(image);
  return 0;
}
