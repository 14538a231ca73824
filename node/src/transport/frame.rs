//! The wire format between peers: each raft-proto `Message` in its protobuf
//! encoding, behind a 4-byte big-endian length. A writer puts as many frames
//! into one write as it has queued.

use bytes::Bytes;
use protobuf::Message as _;
use raft_proto::eraftpb::Message;
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame accepted: a length past it is a corrupt or hostile
/// peer, and is refused before anything is allocated for it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// The codec of a peer connection, both directions.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

/// A message's frame payload.
pub fn encode(msg: &Message) -> Bytes {
    Bytes::from(
        msg.write_to_bytes()
            .expect("a raft message always has its required fields"),
    )
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
    fn garbage_is_a_decode_error() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
