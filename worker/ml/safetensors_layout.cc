#include "worker/ml/safetensors_layout.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace oubli::ml {
namespace {

// Same cap as the reference implementation: a larger header is hostile.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
constexpr int kMaxJsonDepth = 16;
// Parsed values cost ~100 bytes each; this bounds a hostile header's memory
// (~100 MB) while allowing ~100k tensors.
constexpr size_t kMaxJsonValues = size_t{1} << 20;
constexpr size_t kMaxRank = 64;
constexpr char kMetadataKey[] = "__metadata__";

constexpr SafetensorsDtypeInfo kDtypes[] = {
    {"F32", SafetensorsDtype::kF32, 4}, {"F64", SafetensorsDtype::kF64, 8},
    {"F16", SafetensorsDtype::kF16, 2}, {"BF16", SafetensorsDtype::kBF16, 2},
    {"I64", SafetensorsDtype::kI64, 8}, {"I32", SafetensorsDtype::kI32, 4},
    {"U8", SafetensorsDtype::kU8, 1},   {"BOOL", SafetensorsDtype::kBool, 1},
};

const SafetensorsDtypeInfo* DtypeByName(absl::string_view name) {
  for (const SafetensorsDtypeInfo& info : kDtypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

absl::Status Invalid(auto... parts) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors: ", parts...));
}

// Length of the valid UTF-8 sequence starting at text[pos], or 0.
size_t Utf8SequenceLength(absl::string_view text, size_t pos) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(text[i]);
  };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of 2nd byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // <= U+10FFFF
  } else {
    return 0;
  }
  if (text.size() - pos < length) return 0;
  if (byte(pos + 1) < low || byte(pos + 1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) return 0;
  }
  return length;
}

bool IsValidUtf8(absl::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = Utf8SequenceLength(text, pos);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

// ---------------------------------------------------------------------------
// A small strict JSON parser (RFC 8259), enough for safetensors headers.

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // string contents, or the number's token
  // Numbers: set when the token is a non-negative integer that fits.
  bool is_uint = false;
  uint64_t uint_value = 0;
  std::vector<JsonValue> items;   // array elements / object values
  std::vector<std::string> keys;  // object keys, parallel to items
};

const char* KindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "a boolean";
    case JsonValue::Kind::kNumber:
      return "a number";
    case JsonValue::Kind::kString:
      return "a string";
    case JsonValue::Kind::kArray:
      return "an array";
    case JsonValue::Kind::kObject:
      return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  explicit JsonParser(absl::string_view text) : text_(text) {}

  // One value, optionally surrounded by whitespace, and nothing else.
  absl::Status ParseDocument(JsonValue* out) {
    SkipWhitespace();
    OUBLI_RETURN_IF_ERROR(ParseValue(0, out));
    SkipWhitespace();
    if (pos_ != text_.size()) return Error("trailing characters");
    return absl::OkStatus();
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return Invalid("malformed JSON header: ", what, " at header byte ", pos_);
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  void SkipWhitespace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' ||
                        Peek() == '\r')) {
      ++pos_;
    }
  }

  absl::Status Expect(char c) {
    if (AtEnd() || Peek() != c) {
      return Error(absl::StrCat("expected '", std::string(1, c), "'"));
    }
    ++pos_;
    return absl::OkStatus();
  }

  absl::Status ParseValue(int depth, JsonValue* out) {
    if (depth > kMaxJsonDepth) return Error("nesting too deep");
    if (++values_parsed_ > kMaxJsonValues) {
      return Error(absl::StrCat("more than ", kMaxJsonValues, " values"));
    }
    if (AtEnd()) return Error("unexpected end");
    switch (Peek()) {
      case '{':
        return ParseObject(depth, out);
      case '[':
        return ParseArray(depth, out);
      case '"':
        out->kind = JsonValue::Kind::kString;
        return ParseString(&out->text);
      case 't':
        out->kind = JsonValue::Kind::kBool;
        out->boolean = true;
        return ParseLiteral("true");
      case 'f':
        out->kind = JsonValue::Kind::kBool;
        return ParseLiteral("false");
      case 'n':
        out->kind = JsonValue::Kind::kNull;
        return ParseLiteral("null");
      default:
        return ParseNumber(out);
    }
  }

  absl::Status ParseLiteral(absl::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) {
      return Error("invalid literal");
    }
    pos_ += literal.size();
    return absl::OkStatus();
  }

  absl::Status ParseObject(int depth, JsonValue* out) {
    out->kind = JsonValue::Kind::kObject;
    OUBLI_RETURN_IF_ERROR(Expect('{'));
    SkipWhitespace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    std::set<std::string> seen;
    while (true) {
      SkipWhitespace();
      if (AtEnd() || Peek() != '"') return Error("expected object key");
      std::string key;
      OUBLI_RETURN_IF_ERROR(ParseString(&key));
      if (!seen.insert(key).second) {
        return Error(absl::StrCat("duplicate key \"", key, "\""));
      }
      SkipWhitespace();
      OUBLI_RETURN_IF_ERROR(Expect(':'));
      SkipWhitespace();
      JsonValue value;
      OUBLI_RETURN_IF_ERROR(ParseValue(depth + 1, &value));
      out->keys.push_back(std::move(key));
      out->items.push_back(std::move(value));
      SkipWhitespace();
      if (AtEnd()) return Error("unterminated object");
      if (Peek() == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      OUBLI_RETURN_IF_ERROR(Expect(','));
    }
  }

  absl::Status ParseArray(int depth, JsonValue* out) {
    out->kind = JsonValue::Kind::kArray;
    OUBLI_RETURN_IF_ERROR(Expect('['));
    SkipWhitespace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      SkipWhitespace();
      JsonValue value;
      OUBLI_RETURN_IF_ERROR(ParseValue(depth + 1, &value));
      out->items.push_back(std::move(value));
      SkipWhitespace();
      if (AtEnd()) return Error("unterminated array");
      if (Peek() == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      OUBLI_RETURN_IF_ERROR(Expect(','));
    }
  }

  absl::Status ParseHex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) return Error("truncated \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        value |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        value |= c - 'A' + 10;
      } else {
        return Error("invalid hex digit in \\u escape");
      }
    }
    *out = value;
    return absl::OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  absl::Status ParseString(std::string* out) {
    OUBLI_RETURN_IF_ERROR(Expect('"'));
    out->clear();
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const unsigned char c = static_cast<unsigned char>(Peek());
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c < 0x20) return Error("control character in string");
      if (c >= 0x80) {
        const size_t length = Utf8SequenceLength(text_, pos_);
        if (length == 0) return Error("invalid UTF-8 in string");
        out->append(text_.substr(pos_, length).data(), length);
        pos_ += length;
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (AtEnd()) return Error("unterminated escape");
      const char escape = text_[pos_++];
      switch (escape) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          OUBLI_RETURN_IF_ERROR(ParseHex4(&cp));
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Error("unpaired low surrogate");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (text_.substr(pos_, 2) != "\\u") {
              return Error("unpaired high surrogate");
            }
            pos_ += 2;
            uint32_t low;
            OUBLI_RETURN_IF_ERROR(ParseHex4(&low));
            if (low < 0xDC00 || low > 0xDFFF) {
              return Error("invalid low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          AppendUtf8(cp, out);
          break;
        }
        default:
          return Error("invalid escape");
      }
    }
  }

  // RFC 8259 number grammar; records the value when it is an unsigned
  // integer that fits in 64 bits.
  absl::Status ParseNumber(JsonValue* out) {
    out->kind = JsonValue::Kind::kNumber;
    const size_t start = pos_;
    auto digit = [&] { return !AtEnd() && Peek() >= '0' && Peek() <= '9'; };
    bool negative = false, integral = true;
    if (!AtEnd() && Peek() == '-') {
      negative = true;
      ++pos_;
    }
    if (!digit()) return Error("invalid value");
    if (Peek() == '0') {
      ++pos_;
    } else {
      while (digit()) ++pos_;
    }
    const size_t integer_end = pos_;
    if (!AtEnd() && Peek() == '.') {
      integral = false;
      ++pos_;
      if (!digit()) return Error("invalid number fraction");
      while (digit()) ++pos_;
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (!digit()) return Error("invalid number exponent");
      while (digit()) ++pos_;
    }
    out->text = std::string(text_.substr(start, pos_ - start));
    if (negative || !integral) return absl::OkStatus();
    uint64_t value = 0;
    for (size_t i = start; i < integer_end; ++i) {
      const uint64_t d = text_[i] - '0';
      if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) {
        return absl::OkStatus();  // too large: not is_uint
      }
      value = value * 10 + d;
    }
    out->is_uint = true;
    out->uint_value = value;
    return absl::OkStatus();
  }

  absl::string_view text_;
  size_t pos_ = 0;
  size_t values_parsed_ = 0;
};

// ---------------------------------------------------------------------------
// Header interpretation.

struct TensorEntry {
  std::string name;
  const SafetensorsDtypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status ParseUintArray(const std::string& name, absl::string_view field,
                            const JsonValue& value,
                            std::vector<uint64_t>* out) {
  if (value.kind != JsonValue::Kind::kArray) {
    return Invalid("tensor '", name, "': ", field, " must be an array, got ",
                   KindName(value.kind));
  }
  for (const JsonValue& item : value.items) {
    if (item.kind != JsonValue::Kind::kNumber || !item.is_uint) {
      return Invalid("tensor '", name, "': ", field,
                     " must contain non-negative integers, got ",
                     item.kind == JsonValue::Kind::kNumber
                         ? absl::StrCat("'", item.text, "'")
                         : std::string(KindName(item.kind)));
    }
    out->push_back(item.uint_value);
  }
  return absl::OkStatus();
}

absl::Status ParseEntry(const std::string& name, const JsonValue& value,
                        TensorEntry* entry) {
  entry->name = name;
  if (value.kind != JsonValue::Kind::kObject) {
    return Invalid("tensor '", name, "' must map to an object, got ",
                   KindName(value.kind));
  }
  const JsonValue* dtype = nullptr;
  const JsonValue* shape = nullptr;
  const JsonValue* offsets = nullptr;
  for (size_t i = 0; i < value.keys.size(); ++i) {
    const std::string& key = value.keys[i];
    if (key == "dtype") {
      dtype = &value.items[i];
    } else if (key == "shape") {
      shape = &value.items[i];
    } else if (key == "data_offsets") {
      offsets = &value.items[i];
    } else {
      return Invalid("tensor '", name, "': unknown field '", key, "'");
    }
  }
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    return Invalid("tensor '", name,
                   "' needs the fields dtype, shape and data_offsets");
  }
  if (dtype->kind != JsonValue::Kind::kString) {
    return Invalid("tensor '", name, "': dtype must be a string");
  }
  entry->dtype = DtypeByName(dtype->text);
  if (entry->dtype == nullptr) {
    return Invalid("tensor '", name, "': unsupported dtype '", dtype->text,
                   "' (supported: F32, F64, F16, BF16, I64, I32, U8, BOOL)");
  }
  std::vector<uint64_t> dims;
  OUBLI_RETURN_IF_ERROR(ParseUintArray(name, "shape", *shape, &dims));
  if (dims.size() > kMaxRank) {
    return Invalid("tensor '", name, "': rank ", dims.size(),
                   " exceeds the maximum of ", kMaxRank);
  }
  for (uint64_t d : dims) {
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid("tensor '", name, "': dimension ", d, " is too large");
    }
    entry->shape.push_back(static_cast<int64_t>(d));
  }
  std::vector<uint64_t> range;
  OUBLI_RETURN_IF_ERROR(ParseUintArray(name, "data_offsets", *offsets, &range));
  if (range.size() != 2) {
    return Invalid("tensor '", name,
                   "': data_offsets must have 2 entries, "
                   "got ",
                   range.size());
  }
  entry->begin = range[0];
  entry->end = range[1];
  if (entry->begin > entry->end) {
    return Invalid("tensor '", name, "': data_offsets [", entry->begin, ", ",
                   entry->end, "] are reversed");
  }
  return absl::OkStatus();
}

// Byte size of a tensor, or false on overflow.
bool TensorBytes(const TensorEntry& entry, uint64_t* bytes) {
  uint64_t count = 1;
  const bool empty =
      std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end();
  if (empty) {
    *bytes = 0;
    return true;
  }
  for (int64_t d : entry.shape) {
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
      return false;
    }
  }
  return !__builtin_mul_overflow(count, entry.dtype->item_size, bytes);
}

}  // namespace

std::string SafetensorsJsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

absl::Span<const SafetensorsDtypeInfo> SafetensorsDtypes() { return kDtypes; }

bool IsValidSafetensorsName(absl::string_view name) {
  return !name.empty() && name != kMetadataKey && IsValidUtf8(name);
}

absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensorsLayout(
    absl::string_view bytes) {
  if (bytes.size() < 8) {
    return Invalid("file of ", bytes.size(),
                   " bytes is shorter than the 8-byte header length");
  }
  uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > bytes.size() - 8) {
    return Invalid("header length ", header_size, " exceeds the ",
                   bytes.size() - 8, " bytes after the length field");
  }
  if (header_size > kMaxHeaderBytes) {
    return Invalid("header length ", header_size, " exceeds the limit of ",
                   kMaxHeaderBytes);
  }
  const absl::string_view header = bytes.substr(8, header_size);
  const absl::string_view data = bytes.substr(8 + header_size);

  JsonValue root;
  OUBLI_RETURN_IF_ERROR(JsonParser(header).ParseDocument(&root));
  if (root.kind != JsonValue::Kind::kObject) {
    return Invalid("header must be a JSON object, got ", KindName(root.kind));
  }
  std::vector<TensorEntry> entries;
  for (size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    const JsonValue& value = root.items[i];
    if (name == kMetadataKey) {
      // Free-form string->string metadata: validated, then ignored.
      if (value.kind != JsonValue::Kind::kObject) {
        return Invalid("__metadata__ must be an object");
      }
      for (size_t j = 0; j < value.items.size(); ++j) {
        if (value.items[j].kind != JsonValue::Kind::kString) {
          return Invalid("__metadata__ value of '", value.keys[j],
                         "' must be a string");
        }
      }
      continue;
    }
    TensorEntry entry;
    OUBLI_RETURN_IF_ERROR(ParseEntry(name, value, &entry));
    if (entry.end > data.size()) {
      return Invalid("tensor '", name, "': data_offsets [", entry.begin, ", ",
                     entry.end, "] exceed the data section of ", data.size(),
                     " bytes");
    }
    uint64_t expected_bytes;
    if (!TensorBytes(entry, &expected_bytes)) {
      return Invalid("tensor '", name, "': shape ", ShapeString(entry.shape),
                     " is too large");
    }
    if (expected_bytes != entry.end - entry.begin) {
      return Invalid("tensor '", name, "': shape ", ShapeString(entry.shape),
                     " of ", entry.dtype->name, " needs ", expected_bytes,
                     " bytes but data_offsets [", entry.begin, ", ", entry.end,
                     "] span ", entry.end - entry.begin);
    }
    entries.push_back(std::move(entry));
  }

  // The tensors must tile the data section exactly: no gaps, no overlaps.
  std::vector<const TensorEntry*> by_offset;
  for (const TensorEntry& entry : entries) by_offset.push_back(&entry);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorEntry* a, const TensorEntry* b) {
              return std::tie(a->begin, a->end, a->name) <
                     std::tie(b->begin, b->end, b->name);
            });
  uint64_t cursor = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry* entry : by_offset) {
    if (entry->begin < cursor) {
      return Invalid("tensor '", entry->name, "' (bytes [", entry->begin, ", ",
                     entry->end, ")) overlaps tensor '", previous->name,
                     "' (bytes [", previous->begin, ", ", previous->end, "))");
    }
    if (entry->begin > cursor) {
      return Invalid("data bytes [", cursor, ", ", entry->begin,
                     ") belong to no tensor");
    }
    cursor = entry->end;
    previous = entry;
  }
  if (cursor != data.size()) {
    return Invalid("data bytes [", cursor, ", ", data.size(),
                   ") belong to no tensor");
  }

  std::sort(entries.begin(), entries.end(),
            [](const TensorEntry& a, const TensorEntry& b) {
              return a.name < b.name;
            });
  std::vector<SafetensorsEntry> out;
  out.reserve(entries.size());
  for (TensorEntry& entry : entries) {
    const absl::string_view payload =
        data.substr(entry.begin, entry.end - entry.begin);
    if (entry.dtype->dtype == SafetensorsDtype::kBool) {
      // Bytes other than 0/1 are not valid bools.
      for (char byte : payload) {
        if (byte != 0 && byte != 1) {
          return Invalid("tensor '", entry.name,
                         "': BOOL data contains a byte other than 0 or 1");
        }
      }
    }
    out.push_back(SafetensorsEntry{std::move(entry.name), entry.dtype,
                                   std::move(entry.shape), payload});
  }
  return out;
}

}  // namespace oubli::ml
