//! The wire format between peers: each raft-proto `Message` in its protobuf
//! encoding, behind a 4-byte big-endian length. A writer puts as many frames
//! into one write as it has queued.
//!
//! A snapshot's data larger than [`SNAPSHOT_CHUNK_BYTES`] goes out in
//! chunks, each in a frame of its own: the MsgSnapshot with one chunk as its
//! data and the chunk's place in the whole as its context. The receiver
//! puts them back together ([`SnapshotChunks`]) before raft sees the
//! message, so a state larger than a frame still reaches a follower.
//!
//! Every connection opens with a [`Hello`] frame naming the cluster, the
//! sender and the receiver. A probe connection (a node about to found the
//! cluster asking whether it already runs) gets one answer frame, the
//! receiver's applied index, and is closed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protobuf::Message as _;
use raft_proto::eraftpb::{Message, MessageType};
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame accepted: a length past it is a corrupt or hostile
/// peer, and is refused before anything is allocated for it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Snapshot data goes out in chunks of at most this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 16 << 20;

/// The largest snapshot data a node puts back together from chunks: a
/// larger total is a corrupt or hostile peer.
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// Opens a chunk's context, before its offset and the data's total size.
const CHUNK_MAGIC: &[u8; 8] = b"snapchnk";
const CHUNK_CONTEXT_BYTES: usize = 8 + 8 + 8;

/// The first frame of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The sender's cluster id.
    pub cluster: u64,
    /// The sender.
    pub from: u64,
    /// The node it means to reach.
    pub to: u64,
    /// Raft messages follow, or the sender only asks how far this node is.
    pub probe: bool,
}

/// Opens every hello: an old or foreign sender fails on it, not later.
const HELLO_MAGIC: &[u8; 8] = b"raftnode";
/// The peer protocol this node speaks. 2: proposals carry their term
/// stamp, snapshots may come in chunks. 3: a Kafka producer's batch
/// carries its producer numbers beside the stamp, and snapshots the
/// producers' state. Nodes of different versions refuse each other rather
/// than apply the log differently, so every node of a cluster is upgraded
/// together.
pub const PROTOCOL_VERSION: u32 = 3;
const HELLO_BYTES: usize = 8 + 4 + 8 + 8 + 8 + 1;
/// The length of a version 1 hello, which had no version field.
const HELLO_V1_BYTES: usize = 8 + 8 + 8 + 8 + 1;

impl Hello {
    /// Its frame payload.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(HELLO_BYTES);
        out.put_slice(HELLO_MAGIC);
        out.put_u32(PROTOCOL_VERSION);
        out.put_u64(self.cluster);
        out.put_u64(self.from);
        out.put_u64(self.to);
        out.put_u8(u8::from(self.probe));
        out.into()
    }

    /// Parses a hello.
    ///
    /// # Errors
    ///
    /// What the payload is instead: no hello, or one of another protocol
    /// version.
    pub fn decode(payload: &[u8]) -> Result<Hello, String> {
        if payload.len() < 12 || &payload[..8] != HELLO_MAGIC {
            return Err("no hello".into());
        }
        let version = match payload.len() {
            HELLO_V1_BYTES => 1,
            _ => u32::from_be_bytes(payload[8..12].try_into().expect("4 bytes")),
        };
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "a hello of peer protocol {version}; this node speaks {PROTOCOL_VERSION}: \
                 run one version on every node"
            ));
        }
        if payload.len() != HELLO_BYTES {
            return Err("no hello".into());
        }
        let mut buf = &payload[12..];
        let hello = Hello {
            cluster: buf.get_u64(),
            from: buf.get_u64(),
            to: buf.get_u64(),
            probe: match buf.get_u8() {
                0 => false,
                1 => true,
                _ => return Err("no hello".into()),
            },
        };
        Ok(hello)
    }
}

/// The codec of a peer connection, both directions.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// The longest first frame read: room for a later version's longer
/// hello, so that it is refused naming its version rather than as a bad
/// frame; anything longer is refused before it is read.
const HELLO_MAX_BYTES: usize = 64;

/// The codec of a connection's first frame, the hello.
pub fn hello_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(HELLO_MAX_BYTES)
        .new_codec()
}

/// A message's frame payload.
pub fn encode(msg: &Message) -> Bytes {
    Bytes::from(
        msg.write_to_bytes()
            .expect("a raft message always has its required fields"),
    )
}

/// The frame payloads of a message: one, or one per chunk of a snapshot's
/// data larger than [`SNAPSHOT_CHUNK_BYTES`], each encoded only when the
/// writer takes it, so at most one chunk's copy exists at a time.
pub fn encode_frames(msg: &Message) -> impl Iterator<Item = Bytes> + '_ {
    let data = &msg.get_snapshot().data;
    let chunked =
        msg.get_msg_type() == MessageType::MsgSnapshot && data.len() > SNAPSHOT_CHUNK_BYTES;
    let whole = (!chunked).then(|| encode(msg));
    let chunks = (0..if chunked { data.len() } else { 0 })
        .step_by(SNAPSHOT_CHUNK_BYTES)
        .map(move |offset| {
            let total = data.len();
            let mut chunk = msg.clone();
            let end = (offset + SNAPSHOT_CHUNK_BYTES).min(total);
            chunk.mut_snapshot().data = data.slice(offset..end);
            let mut context = Vec::with_capacity(CHUNK_CONTEXT_BYTES);
            context.put_slice(CHUNK_MAGIC);
            context.put_u64(offset as u64);
            context.put_u64(total as u64);
            chunk.context = context.into();
            encode(&chunk)
        });
    whole.into_iter().chain(chunks)
}

/// A snapshot being put back together on one connection.
struct Assembly {
    /// The first chunk, its data taken.
    msg: Message,
    data: BytesMut,
    total: usize,
}

/// Puts chunked snapshots back together, one connection's worth. The
/// chunks of a snapshot come in order on one connection, as one writer
/// sends them; anything else is a broken or hostile peer.
#[derive(Default)]
pub struct SnapshotChunks {
    assembling: Option<Assembly>,
}

impl SnapshotChunks {
    /// Takes a message read from the connection: returns it if it is
    /// whole, or the snapshot once its last chunk is in; `None` while
    /// chunks are missing.
    ///
    /// # Errors
    ///
    /// A chunk out of order, past its total, or of a total over
    /// [`MAX_SNAPSHOT_BYTES`].
    pub fn take(&mut self, mut msg: Message) -> Result<Option<Message>, String> {
        let Some((offset, total)) = chunk_place(&msg) else {
            return Ok(Some(msg));
        };
        let chunk = std::mem::take(&mut msg.mut_snapshot().data);
        if total > MAX_SNAPSHOT_BYTES || chunk.is_empty() {
            return Err(format!(
                "a snapshot chunk of {} bytes of a total of {total} (at most {MAX_SNAPSHOT_BYTES})",
                chunk.len()
            ));
        }
        let assembly = match self.assembling.take() {
            // The buffer grows with the chunks that arrive, not with the
            // total a peer claims.
            None if offset == 0 => self.assembling.insert(Assembly {
                msg,
                data: BytesMut::new(),
                total,
            }),
            Some(a)
                if a.total == total
                    && a.data.len() == offset
                    && a.msg.get_snapshot().get_metadata() == msg.get_snapshot().get_metadata() =>
            {
                self.assembling.insert(a)
            }
            _ => {
                return Err(format!(
                    "a snapshot chunk at {offset} of {total}, out of order"
                ))
            }
        };
        if offset + chunk.len() > total {
            return Err(format!(
                "a snapshot chunk of {} bytes at {offset} runs past its total of {total}",
                chunk.len()
            ));
        }
        assembly.data.extend_from_slice(&chunk);
        if assembly.data.len() < total {
            return Ok(None);
        }
        let Assembly { mut msg, data, .. } = self.assembling.take().expect("just inserted");
        msg.mut_snapshot().data = data.freeze();
        msg.context = Bytes::new();
        Ok(Some(msg))
    }
}

/// The offset and total of a snapshot chunk; `None` for a whole message.
fn chunk_place(msg: &Message) -> Option<(usize, usize)> {
    let context = &msg.context;
    if msg.get_msg_type() != MessageType::MsgSnapshot
        || context.len() != CHUNK_CONTEXT_BYTES
        || &context[..8] != CHUNK_MAGIC
    {
        return None;
    }
    let mut place = &context[8..];
    let offset = usize::try_from(place.get_u64()).ok()?;
    let total = usize::try_from(place.get_u64()).ok()?;
    Some((offset, total))
}

/// Parses a frame payload.
///
/// # Errors
///
/// The bytes are not a protobuf `Message`.
pub fn decode(payload: &[u8]) -> Result<Message, protobuf::ProtobufError> {
    Message::parse_from_bytes(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use raft_proto::eraftpb::{Entry, MessageType};
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgAppend);
        msg.to = 2;
        msg.from = 1;
        msg.entries = vec![Entry {
            index: 7,
            term: 3,
            data: vec![1; 300].into(),
            ..Default::default()
        }]
        .into();
        let mut wire = BytesMut::new();
        codec().encode(encode(&msg), &mut wire).unwrap();
        codec().encode(encode(&msg), &mut wire).unwrap();
        let mut reader = codec();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            if let Some(frame) = reader.decode(&mut buf).unwrap() {
                got.push(decode(&frame).unwrap());
            }
        }
        assert_eq!(got, vec![msg.clone(), msg]);
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_it() {
        let mut buf = BytesMut::from(&((MAX_FRAME_BYTES as u32) + 1).to_be_bytes()[..]);
        assert!(codec().decode(&mut buf).is_err());
    }

    #[test]
    fn a_hello_round_trips_and_nothing_else_passes_for_one() {
        let hello = Hello {
            cluster: 7,
            from: 1,
            to: 2,
            probe: true,
        };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        let raft = encode(&Message::default());
        assert!(Hello::decode(&raft).is_err());
        let mut bad = hello.encode().to_vec();
        bad[36] = 2;
        assert!(Hello::decode(&bad).is_err());
        assert!(Hello::decode(&bad[..20]).is_err());
        let mut v1 = HELLO_MAGIC.to_vec();
        v1.extend_from_slice(&hello.encode()[12..]);
        let refused = Hello::decode(&v1).unwrap_err();
        assert!(refused.contains("peer protocol 1"), "{refused}");
    }

    fn snapshot(bytes: usize) -> Message {
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgSnapshot);
        msg.mut_snapshot().mut_metadata().index = 9;
        msg.mut_snapshot().data = (0..bytes).map(|i| i as u8).collect::<Vec<_>>().into();
        msg
    }

    #[test]
    fn a_snapshot_over_a_chunk_crosses_in_chunks_and_is_whole_again() {
        let msg = snapshot(2 * SNAPSHOT_CHUNK_BYTES + 5);
        let frames: Vec<Bytes> = encode_frames(&msg).collect();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.len() < MAX_FRAME_BYTES));
        let mut chunks = SnapshotChunks::default();
        let mut whole = Vec::new();
        for f in &frames {
            whole.extend(chunks.take(decode(f).unwrap()).unwrap());
        }
        assert_eq!(whole, vec![msg]);
        let small = snapshot(10);
        assert_eq!(
            encode_frames(&small).collect::<Vec<_>>(),
            vec![encode(&small)]
        );
    }

    #[test]
    fn chunks_out_of_order_or_past_the_limit_are_refused() {
        let frames: Vec<Bytes> = encode_frames(&snapshot(2 * SNAPSHOT_CHUNK_BYTES + 5)).collect();
        let second = decode(&frames[1]).unwrap();
        assert!(SnapshotChunks::default().take(second).is_err());

        let mut chunks = SnapshotChunks::default();
        assert_eq!(chunks.take(decode(&frames[0]).unwrap()), Ok(None));
        assert!(chunks.take(decode(&frames[0]).unwrap()).is_err());

        let mut chunks = SnapshotChunks::default();
        assert_eq!(chunks.take(decode(&frames[0]).unwrap()), Ok(None));
        let mut other = decode(&frames[1]).unwrap();
        other.mut_snapshot().mut_metadata().index += 1;
        assert!(chunks.take(other).is_err(), "a chunk of another snapshot");

        let mut huge = decode(&frames[0]).unwrap();
        let mut context = huge.context.to_vec();
        context[16..].copy_from_slice(&(MAX_SNAPSHOT_BYTES as u64 + 1).to_be_bytes());
        huge.context = context.into();
        assert!(SnapshotChunks::default().take(huge).is_err());
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
