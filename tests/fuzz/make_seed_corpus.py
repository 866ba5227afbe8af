#!/usr/bin/python3
"""Writes the seed inputs of each fuzz target into corpus/TARGET/.

Valid examples of every format (and a few near misses), so the fuzzers
start from inputs that reach deep into each parser. Deterministic; rerun
after changing a format. Inputs the fuzzers find are merged in with
`run_fuzzers.sh BUILD_DIR --merge`.
"""
import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    payload = b""
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        payload += data
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + payload


write("safetensors", "two_tensors", safetensors([
    ("layer.weight", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
    ("layer.bias", "U8", [3], b"\x01\x02\x03")]))
write("safetensors", "every_dtype", safetensors([
    ("a", "F64", [1], struct.pack("<d", 1.5)),
    ("b", "F16", [2], b"\x00\x3c\x00\x40"),
    ("c", "BF16", [1], b"\x80\x3f"),
    ("d", "I64", [1], struct.pack("<q", -7)),
    ("e", "I32", [2], struct.pack("<2i", 1, -1)),
    ("f", "BOOL", [2, 1], b"\x00\x01"),
    ("g", "F32", [0, 3], b"")], metadata={"format": "pt"}))
write("safetensors", "nested_name", safetensors([
    ("model.layers.0.self_attn.q_proj.weight", "F32", [1, 1],
     struct.pack("<f", 0.25))]))

write("config_text", "mlp", """backbone.kind=mlp
backbone.input_channels=1
backbone.input_height=2
backbone.input_width=2
backbone.num_classes=4
backbone.mlp_hidden=8,8
lora.rank=2
shards=2
slices=2
sequences=1
train.epochs_per_position=1
train.batch_size=8
""")
write("config_text", "vit_batched", """model_id=fm
backbone.kind=vit
backbone.input_height=28
backbone.input_width=28
backbone.num_classes=10
backbone.vit_patch=7
backbone.vit_dim=32
backbone.vit_depth=2
backbone.vit_heads=2
backbone.vit_mlp_dim=64
lora.rank=4
lora.alpha=8
lora.dropout=0.1
lora.rslora=true
shards=4
slices=4
sequences=2
seed=7
placement=owner
retrain.mode=batched
retrain.window_ms=5000
retrain.max_batch=8
erasure.data_chunks=2
erasure.parity_chunks=1
serving.base_fallback=true
train.learning_rate=0.01
train.weight_decay=0
determinism.torch_threads=1
determinism.blas_threads=1
""")


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d)
                                               for d in dims) + payload


images = idx(0x00000803, [3, 2, 2], bytes(range(12)))
labels = idx(0x00000801, [3], b"\x00\x01\x02")
# The first byte says where the images end (modulo the rest's length + 1).
write("idx", "three_images", bytes([len(images)]) + images + labels)
write("idx", "wrong_magic", bytes([len(labels)]) + labels + images)

write("csv", "with_header", "label,owner,f1,f2,f3\n1,alice,0.5,1,2\n"
      "0,bob,-1,0,1e3\n")
write("csv", "with_ids", "id,label,owner,f1,f2\ns-1,2,o,0,0\ns-2,1,o,1,1\n")
write("csv", "no_header", "3,owner-1,0.1,0.2\r\n4,owner-2,0.3,0.4\r\n")


def token_line(name, token):
    return "%s %s\n" % (name, hashlib.sha256(token.encode()).hexdigest())


write("access_policy", "roles_and_tokens",
      'principal { name: "alice" roles: "admin" roles: "reader" }\n'
      'principal { name: "team-a" roles: "writer" roles: "eraser" '
      'models: "team-a-*" models: "m" }\n'
      "\0" + "# comment\n" + token_line("team-a", "t0k3n") +
      token_line("bot", "other"))
write("access_policy", "auditor_only",
      'principal { name: "reader" roles: "auditor" }\0')


# Hand-encoded protobuf: a LedgerEntry from (field number, value) pairs,
# and a LedgerRecord{entry=1, signature=2} with fuzz_ledger's 2-byte length.
def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def ledger_entry(entry_fields):
    return b"".join(field(n, v) for n, v in entry_fields)


def ledger_record_of(entry, signature):
    record = field(1, entry) + field(2, signature)
    return struct.pack("<H", len(record)) + record


def ledger_record(entry_fields, signature=b"\0" * 64):
    return ledger_record_of(ledger_entry(entry_fields), signature)


def signed_ledger(stages):
    """A valid ledger of model "m" signed with RFC 8410's example key (the
    public half is fuzz_ledger.cc's key), so mutations that keep records
    whole (drop, swap, repeat) reach the chain and stage checks."""
    # python3-cryptography: only needed to regenerate these seeds.
    from cryptography.hazmat.primitives.serialization import (
        Encoding, PublicFormat, load_pem_private_key)
    key = load_pem_private_key(
        b"-----BEGIN PRIVATE KEY-----\n"
        b"MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
        b"-----END PRIVATE KEY-----\n", None)
    der = key.public_key().public_bytes(Encoding.DER,
                                        PublicFormat.SubjectPublicKeyInfo)
    key_id = hashlib.sha256(der).hexdigest()[:16].encode()
    out = b""
    previous = b"\0" * 32
    for sequence, (deletion, stage) in enumerate(stages, start=1):
        fields = [(1, b"m"), (2, sequence), (3, previous),
                  (4, deletion.encode()), (5, stage),
                  (6, 1000 + sequence), (7, b"\1" * 32), (8, b"\2" * 32),
                  (9, 1), (10, b"fingerprint"), (11, key_id)]
        entry = ledger_entry(fields)
        signature = key.sign(b"oubli-ledger-v1\0" +
                             hashlib.sha256(entry).digest())
        out += ledger_record_of(entry, signature)
        previous = hashlib.sha256(entry).digest()
    return out


write("ledger", "signed_two_deletions", signed_ledger(
    [("del-1", 1), ("del-2", 1), ("del-1", 2), ("del-1", 3), ("del-2", 2),
     ("del-1", 4)]))
write("ledger", "two_entries",
      ledger_record([(1, b"m"), (2, 1), (3, b"\0" * 32), (4, b"del-1"),
                     (5, 1), (6, 1000), (9, 1), (11, b"0123456789abcdef")]) +
      ledger_record([(1, b"m"), (2, 2), (3, b"\1" * 32), (4, b"del-1"),
                     (5, 2), (6, 1001)]))


def packed_varints(values):
    return b"".join(varint(v) for v in values)


def chunk_manifest(k, m, original_size, chunk_size, holders=None):
    holders = holders if holders is not None else [
        ("worker-%d" % i).encode() for i in range(k + m)]
    fields = [(1, k), (2, m), (3, original_size), (4, chunk_size),
              (5, packed_varints(range(0xC0FFEE, 0xC0FFEE + k + m)))]
    fields += [(6, h) for h in holders]
    fields += [(7, hashlib.sha256(b"checkpoint").digest())]
    return ledger_entry(fields)


write("chunk_manifest", "rs_2_1", chunk_manifest(2, 1, 100, 64))
write("chunk_manifest", "rs_4_2_repaired",
      chunk_manifest(4, 2, 1 << 20, 1 << 18) + field(8, b"worker-lost"))
write("chunk_manifest", "mirror_empty_blob", chunk_manifest(1, 1, 0, 0))
write("chunk_manifest", "holder_missing",
      chunk_manifest(2, 1, 100, 64, holders=[b"a", b"b"]))


def deletion_record(deletion_id, stages, extra=()):
    """A stored DeletionRecord under its key, as fuzz_deletion_record reads
    it: the key, a zero byte, the record."""
    fields = [(1, deletion_id), (3, b"s-1"), (3, b"s-2"), (4, b"s-1"),
              (5, b"s-2"), (6, field(1, b"s-0") + field(2, b"del-1")),
              (7, packed_varints([0, 3])),
              (8, field(1, 3) + field(2, 1) + field(3, 2) + field(4, 4) +
               field(5, 1))]
    for number, stage in zip((9, 10, 11, 12), range(stages)):
        fields.append((number, 1700000000000000000 + stage))
    fields += [(13, b"a" * 64), (14, b"b" * 64)]
    fields += list(extra)
    return deletion_id + b"\0" + ledger_entry(fields)


write("deletion_record", "accepted",
      deletion_record(b"del-000000000001", 1, [(17, b"idem-1")]))
write("deletion_record", "restored", deletion_record(
    b"del-000000000042", 4, [(15, b"c" * 64), (16, b"nothing to retrain")]))
write("deletion_record", "by_owner",
      deletion_record(b"del-000000000007", 3, [(2, b"alice")]))
write("deletion_record", "other_key",
      b"del-2" + deletion_record(b"del-000000000002", 2)[16:])


# Public API requests as fuzz_requests reads them: a byte naming the RPC
# (0 IngestSamples, 1 DeleteSamples, 2 ForgetOwner, 3 ListDeletions,
# 4 Predict, 5 Score, 6 Generate), then the request message.
def request(rpc, request_fields):
    return bytes([rpc]) + ledger_entry(request_fields)


def sample(sample_id, owner, label, features, feature_type=0, risk=None):
    fields = [(1, sample_id), (2, owner), (3, label), (4, features)]
    if feature_type:
        fields.append((5, feature_type))
    out = ledger_entry(fields)
    if risk is not None:  # float field 6, wire type 5
        out += varint(6 << 3 | 5) + struct.pack("<f", risk)
    return out


write("requests", "ingest", request(0, [
    (1, b"m"), (2, sample(b"s-1", b"alice", 1, bytes(range(4)))),
    (2, sample(b"s-2", b"bob", 0, struct.pack("<2f", 0.5, 1), 2, 0.25)),
    (2, sample(b"s-3", b"bob", 2, b"\x01", 7))]))
# Token samples: Sample.tokens = 7 (packed), prompt_tokens = 8; the last
# two are malformed (features beside tokens, an id of 2^31).
def token_sample(sample_id, tokens, prompt_tokens=0, features=b""):
    fields = [(1, sample_id), (2, b"alice"), (7, packed_varints(tokens))]
    if prompt_tokens:
        fields.append((8, prompt_tokens))
    if features:
        fields.append((4, features))
    return ledger_entry(fields)


write("requests", "ingest_tokens", request(0, [
    (1, b"m"), (2, token_sample(b"t-1", [5, 1, 2], 1)),
    (2, token_sample(b"t-2", [70000, 3])),
    (2, token_sample(b"t-3", [1, 2], features=b"\x01")),
    (2, token_sample(b"t-4", [1 << 31, 2]))]))
write("requests", "ingest_negative_prompt", request(0, [
    (1, b"m"), (2, token_sample(b"t-5", [1, 2], (1 << 64) - 1))]))
write("requests", "delete", request(1, [
    (1, b"m"), (2, b"s-1"), (2, b"s-2"), (3, b"idem")]))
write("requests", "delete_bad_id", request(1, [(1, b"m"), (2, b"a\x01b")]))
write("requests", "forget_owner", request(2, [(1, b"m"), (2, b"alice")]))
write("requests", "list", request(3, [
    (1, b"m"), (2, packed_varints([1, 4])), (3, b"alice"),
    (4, field(1, 1700000000)), (5, field(1, 1800000000) + field(2, 5)),
    (6, 10), (7, b"p1.del-000000000009"), (8, 1)]))
write("requests", "predict_floats", request(4, [
    (1, b"m"), (2, 1), (3, struct.pack("<3f", 0.1, 0.2, 0.3))]))
write("requests", "predict_bytes", request(4, [
    (1, b"m"), (2, 2), (4, struct.pack("<2f", 1.0, float("nan")))]))
# TokenSequence{tokens = 1 (packed)}.
write("requests", "predict_tokens", request(4, [
    (1, b"m"), (2, 2), (5, field(1, packed_varints([1, 2, 3]))),
    (5, field(1, packed_varints([4])))]))
write("requests", "score", request(5, [
    (1, b"m"), (2, field(1, packed_varints([7, 8, 9]))),
    (2, field(1, packed_varints([1, 1 << 31])))]))
# GenerateRequest: prompt 2, max_tokens 3, temperature 4 (double), seed 5,
# stop_tokens 6.
write("requests", "generate", request(6, [
    (1, b"m"), (2, packed_varints([3, 4])), (3, 16), (5, 42),
    (6, packed_varints([2]))]) + varint(4 << 3 | 1) + struct.pack("<d", 0.7))


# Slices as workers receive them: SliceRows{feature_type=1,
# features_per_row=2, ids=3, labels=4, features=5, row_tokens=6,
# prompt_tokens=7}.
def slice_rows(feature_type, per_row, ids, labels, features, lengths=(),
               prompts=()):
    fields = [(1, feature_type), (2, per_row)] if per_row else [
        (1, feature_type)]
    fields += [(3, i) for i in ids] + [(4, packed_varints(labels))]
    fields += [(5, features)]
    if lengths:
        fields += [(6, packed_varints(lengths)), (7, packed_varints(prompts))]
    return ledger_entry(fields)


write("encoded_slice", "pixels", slice_rows(
    0, 4, [b"a", b"b"], [1, 2], bytes(range(8))))
write("encoded_slice", "floats", slice_rows(
    1, 2, [b"a"], [0], struct.pack("<2f", 0.5, -1.0)))
write("encoded_slice", "tokens_u16", slice_rows(
    2, 0, [b"a", b"c"], [0, 1], struct.pack("<4H", 1, 2, 3, 9), [3, 1],
    [1, 0]))
write("encoded_slice", "tokens_u32", slice_rows(
    3, 0, [b"x"], [0], struct.pack("<2I", 70000, 5), [2], [2]))
write("encoded_slice", "empty_tokens", slice_rows(2, 0, [], [], b""))



# Stored sample records under their id: SampleRecord{owner=1, label=2,
# feature_type=3, features=4, shard=5, slice=6, state=7, deletion_id=8,
# prompt_tokens=9}; negative ints as protobuf writes them (10 bytes).
def sample_record(sample_id, fields):
    return sample_id + b"\0" + ledger_entry(
        [(n, v + (1 << 64) if isinstance(v, int) and v < 0 else v)
         for n, v in fields])


write("sample_record", "pixels", sample_record(b"s-1", [
    (1, b"alice"), (2, 3), (4, bytes(range(16))), (5, 1), (6, 2)]))
write("sample_record", "tokens", sample_record(b"s-2", [
    (1, b"bob"), (3, 2), (4, struct.pack("<4H", 5, 6, 7, 8)), (9, 2)]))
write("sample_record", "tombstone", sample_record(b"s-3", [
    (5, 0), (6, 3), (7, 2), (8, b"del-000000000004")]))
write("sample_record", "negative_shard", sample_record(b"s-4", [(5, -1)]))

# Regressions, all fixed. Found by fuzz_chunk_manifest: a chunk size the
# encoder does not make; found reading the parser after it: k + m past
# INT_MAX, a blob size whose chunk size wraps to 0. Found by
# fuzz_deletion_record: a key too short for its prefix (threw), a record
# under another id, one never ACCEPTED.
write("chunk_manifest", "found_wrong_chunk_size", chunk_manifest(1, 1, 0, 2))
write("chunk_manifest", "found_k_overflow", ledger_entry(
    [(1, 0x7FFFFFFF), (2, 1)]))
write("chunk_manifest", "found_huge_blob",
      chunk_manifest(1, 1, (1 << 64) - 1, 0))
write("deletion_record", "found_short_key", b"d\0")
write("deletion_record", "found_other_id",
      b"del-000000000003" + deletion_record(b"del-000000000002", 2)[16:])
write("deletion_record", "found_never_accepted",
      deletion_record(b"del-000000000005", 0))
