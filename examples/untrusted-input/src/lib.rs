//! Hostile wire input for raft-proto's generated parsers.
//!
//! RUSTSEC-2024-0437 reports uncontrolled recursion in the `protobuf` crate
//! when it parses unknown fields of the group wire type. The tests in
//! `tests/` feed every raft-proto message that crosses the network deeply
//! nested unknown groups, under whichever codec this crate was built with.

/// The wire type of a group's start tag.
const START_GROUP: u64 = 3;
/// The wire type of a group's end tag.
const END_GROUP: u64 = 4;
/// A field number no raft-proto message uses.
pub const UNKNOWN_FIELD: u64 = 1000;

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `depth` unknown groups, each inside the one before, all closed.
pub fn nested_groups(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(depth * 4);
    for _ in 0..depth {
        varint(UNKNOWN_FIELD << 3 | START_GROUP, &mut bytes);
    }
    for _ in 0..depth {
        varint(UNKNOWN_FIELD << 3 | END_GROUP, &mut bytes);
    }
    bytes
}

/// One unknown group holding a varint field, after `prefix`.
pub fn flat_group_after(prefix: &[u8]) -> Vec<u8> {
    let mut bytes = prefix.to_vec();
    varint(UNKNOWN_FIELD << 3 | START_GROUP, &mut bytes);
    varint(1 << 3, &mut bytes);
    varint(42, &mut bytes);
    varint(UNKNOWN_FIELD << 3 | END_GROUP, &mut bytes);
    bytes
}

/// Decodes `bytes` with rust-protobuf, the default codec.
#[cfg(not(feature = "prost-codec"))]
pub fn decode<M: protobuf::Message>(bytes: &[u8]) -> Result<M, String> {
    M::parse_from_bytes(bytes).map_err(|e| e.to_string())
}

/// Encodes `message` with rust-protobuf, the default codec.
#[cfg(not(feature = "prost-codec"))]
pub fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message.write_to_bytes().expect("a valid message encodes")
}

/// Decodes `bytes` with prost (raft-proto's `prost-codec`, whose
/// rust-protobuf wrappers do not parse).
#[cfg(feature = "prost-codec")]
pub fn decode<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, String> {
    M::decode(bytes).map_err(|e| e.to_string())
}

/// Encodes `message` with prost.
#[cfg(feature = "prost-codec")]
pub fn encode<M: prost::Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

/// Runs `f` on a thread whose stack is `stack_bytes`: a parser that recursed
/// once per nesting level would overflow it and abort the test process.
pub fn on_small_stack<T: Send + 'static>(
    stack_bytes: usize,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::Builder::new()
        .stack_size(stack_bytes)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("the parse returned")
}
