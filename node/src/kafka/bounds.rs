//! Counts checked before `kafka-protocol` reads them.
//!
//! The codec reserves memory for an array's declared element count before
//! it reads the first element, and so it does for a record batch's record
//! count and a record's header count (kafka-protocol-rs pull requests
//! 152, 161 and 200, open as of 0.18). A few bytes declaring 2^31 elements
//! ask for tens of GiB: the allocation fails and the process aborts, a
//! crash any client could cause. Every element takes at least one byte,
//! so a count above the bytes left cannot be a real message: these walks
//! refuse it first. They read only the shape of the requests and versions
//! this node decodes (their fields as `kafka-protocol` 0.18 reads them);
//! the codec still decodes every field.

use kafka_protocol::messages::ApiKey;

/// A body that declares more elements than it holds bytes, or ends early.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Implausible(String);

fn implausible<T>(why: impl Into<String>) -> Result<T, Implausible> {
    Err(Implausible(why.into()))
}

/// Array elements (topics, partitions) one request may name in all: the
/// node serves one partition, and a request's answer holds something for
/// each element, so a frame of empty elements must not become millions of
/// answers.
pub const MAX_ELEMENTS: usize = 1024;

/// A reader over a request body that only skips and counts.
struct Walk<'a> {
    buf: &'a [u8],
    /// Compact strings, bytes and arrays, and tagged fields (a flexible
    /// version).
    flexible: bool,
    /// Array elements read so far.
    elements: usize,
}

impl Walk<'_> {
    fn skip(&mut self, n: usize) -> Result<(), Implausible> {
        if self.buf.len() < n {
            return implausible(format!("{n} bytes needed, {} left", self.buf.len()));
        }
        self.buf = &self.buf[n..];
        Ok(())
    }

    fn int(&mut self, n: usize) -> Result<i64, Implausible> {
        let bytes = self
            .buf
            .get(..n)
            .ok_or_else(|| Implausible("truncated".into()))?;
        let value = bytes.iter().fold(0i64, |v, &b| (v << 8) | i64::from(b));
        self.buf = &self.buf[n..];
        // Sign-extend.
        let shift = 64 - 8 * n as u32;
        Ok((value << shift) >> shift)
    }

    fn unsigned_varint(&mut self) -> Result<u64, Implausible> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.int(1)? as u8;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        implausible("a varint longer than 5 bytes")
    }

    /// A length or count: `None` for null.
    fn length(&mut self, classic_bytes: usize) -> Result<Option<usize>, Implausible> {
        let n = if self.flexible {
            self.unsigned_varint()? as i64 - 1
        } else {
            self.int(classic_bytes)?
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => implausible(format!("a length of {n}")),
            n => Ok(Some(n as usize)),
        }
    }

    fn string(&mut self) -> Result<(), Implausible> {
        let len = self.length(2)?.unwrap_or(0);
        self.skip(len)
    }

    fn bytes(&mut self) -> Result<(), Implausible> {
        let len = self.length(4)?.unwrap_or(0);
        self.skip(len)
    }

    /// An array (null or not) whose elements `each` walks.
    fn array(
        &mut self,
        mut each: impl FnMut(&mut Self) -> Result<(), Implausible>,
    ) -> Result<(), Implausible> {
        let count = self.length(4)?.unwrap_or(0);
        if count > self.buf.len() {
            return implausible(format!(
                "an array of {count} elements in {} bytes",
                self.buf.len()
            ));
        }
        self.elements += count;
        if self.elements > MAX_ELEMENTS {
            return implausible(format!("more than {MAX_ELEMENTS} topics and partitions"));
        }
        (0..count).try_for_each(|_| each(self))
    }

    fn tagged_fields(&mut self) -> Result<(), Implausible> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.unsigned_varint()?;
        if count > self.buf.len() as u64 {
            return implausible(format!("{count} tagged fields in {} bytes", self.buf.len()));
        }
        for _ in 0..count {
            self.unsigned_varint()?;
            let size = self.unsigned_varint()?;
            self.skip(size as usize)?;
        }
        Ok(())
    }
}

/// Checks the counts in the body of a request of `api` at a `version`
/// this node serves (versions with topic ids, 13 and later, are not), as
/// far as the codec would reserve memory for them, and the elements in
/// all against [`MAX_ELEMENTS`].
///
/// # Errors
///
/// [`Implausible`]: a count above the bytes left, or a body that ends
/// early.
pub fn check(api: ApiKey, version: i16, body: &[u8]) -> Result<(), Implausible> {
    let (i8, i16, i32, i64, uuid) = (1, 2, 4, 8, 16);
    let mut w = Walk {
        buf: body,
        flexible: false,
        elements: 0,
    };
    match api {
        ApiKey::Produce => {
            w.flexible = version >= 9;
            w.string()?;
            w.skip(i16 + i32)?;
            w.array(|w| {
                w.string()?;
                w.array(|w| {
                    w.skip(i32)?;
                    w.bytes()?;
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
        }
        ApiKey::Fetch => {
            w.flexible = version >= 12;
            let session = if version >= 7 { i32 + i32 } else { 0 };
            w.skip(i32 + i32 + i32 + i32 + i8 + session)?;
            w.array(|w| {
                w.string()?;
                w.array(|w| {
                    let leader_epoch = if version >= 9 { i32 } else { 0 };
                    let last_fetched = if version >= 12 { i32 } else { 0 };
                    let log_start = if version >= 5 { i64 } else { 0 };
                    w.skip(i32 + leader_epoch + i64 + last_fetched + log_start + i32)?;
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
            if version >= 7 {
                w.array(|w| {
                    w.string()?;
                    w.array(|w| w.skip(i32))?;
                    w.tagged_fields()
                })?;
            }
        }
        ApiKey::Metadata => {
            w.flexible = version >= 9;
            w.array(|w| {
                if version >= 10 {
                    w.skip(uuid)?;
                }
                w.string()?;
                w.tagged_fields()
            })?;
        }
        ApiKey::ListOffsets => {
            w.flexible = version >= 6;
            w.skip(i32 + if version >= 2 { i8 } else { 0 })?;
            w.array(|w| {
                w.string()?;
                w.array(|w| {
                    let leader_epoch = if version >= 4 { i32 } else { 0 };
                    w.skip(i32 + leader_epoch + i64)?;
                    w.tagged_fields()
                })?;
                w.tagged_fields()
            })?;
        }
        // No arrays in the versions decoded.
        _ => {}
    }
    Ok(())
}

/// Checks the records of a record batch, `records` being the bytes after
/// its header: exactly `count` records and nothing after them, each
/// within its own length, with a header count no larger than the bytes
/// left in it.
///
/// # Errors
///
/// [`Implausible`]: a record that overruns, a count above the bytes left,
/// bytes after the last record.
pub fn check_records(mut records: &[u8], count: usize) -> Result<(), Implausible> {
    for i in 0..count {
        let len = zigzag_varint(&mut records)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= records.len())
            .ok_or_else(|| Implausible(format!("record {i}: length {len}")))?;
        let (mut record, rest) = records.split_at(len);
        records = rest;
        record = record.get(1..).unwrap_or_default();
        // Timestamp delta, offset delta.
        zigzag_varint(&mut record)?;
        zigzag_varint(&mut record)?;
        for field in ["key", "value"] {
            let len = zigzag_varint(&mut record)?;
            if len >= 0 {
                record = usize::try_from(len)
                    .ok()
                    .and_then(|len| record.get(len..))
                    .ok_or_else(|| Implausible(format!("record {i}: {field} of {len} bytes")))?;
            }
        }
        let headers = zigzag_varint(&mut record)?;
        if headers > record.len() as i64 {
            return implausible(format!(
                "record {i}: {headers} headers in {} bytes",
                record.len()
            ));
        }
    }
    if !records.is_empty() {
        return implausible(format!("{} bytes after the last record", records.len()));
    }
    Ok(())
}

/// A zigzag-encoded varint of up to 10 bytes, as records use.
fn zigzag_varint(buf: &mut &[u8]) -> Result<i64, Implausible> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or_else(|| Implausible("a truncated varint".into()))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    implausible("a varint longer than 10 bytes")
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest, MetadataRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;
    use crate::kafka::apis::served;
    use crate::kafka::client::{produce_request, record_batch};

    fn encoded(message: &impl Encodable, version: i16) -> Vec<u8> {
        let mut out = BytesMut::new();
        message.encode(&mut out, version).unwrap();
        out.to_vec()
    }

    fn name() -> TopicName {
        TopicName(StrBytes::from_static_str("records"))
    }

    /// A request of every shape walked, at `version`.
    fn requests(api: ApiKey, version: i16) -> Vec<u8> {
        match api {
            ApiKey::Produce => encoded(
                &produce_request(
                    "records",
                    record_batch(&[bytes::Bytes::from_static(b"v")], None).unwrap(),
                ),
                version,
            ),
            ApiKey::Fetch => encoded(
                &FetchRequest::default().with_topics(vec![FetchTopic::default()
                    .with_topic(name())
                    .with_partitions(vec![FetchPartition::default(); 2])]),
                version,
            ),
            ApiKey::Metadata => encoded(
                &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default(
                )
                .with_name(Some(name()))])),
                version,
            ),
            ApiKey::ListOffsets => encoded(
                &ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name())
                    .with_partitions(vec![ListOffsetsPartition::default(); 3])]),
                version,
            ),
            _ => Vec::new(),
        }
    }

    #[test]
    fn every_served_version_of_a_real_request_passes() {
        for api in [
            ApiKey::Produce,
            ApiKey::Fetch,
            ApiKey::Metadata,
            ApiKey::ListOffsets,
        ] {
            let versions = served(api).unwrap();
            // Produce below 3 is advertised but not decoded.
            for version in (*versions.start()).max(3)..=*versions.end() {
                let body = requests(api, version);
                assert_eq!(check(api, version, &body), Ok(()), "{api:?} v{version}");
                assert!(
                    check(api, version, &body[..body.len() / 2]).is_err(),
                    "{api:?} v{version}: half a body"
                );
            }
        }
    }

    #[test]
    fn a_count_above_the_bytes_left_is_refused_before_the_codec_reserves_it() {
        // Metadata v1: a topic array of i32::MAX elements in 4 bytes.
        let body = i32::MAX.to_be_bytes();
        assert!(check(ApiKey::Metadata, 1, &body).is_err());
        // Metadata v9 (compact): the same count as a varint.
        assert!(check(ApiKey::Metadata, 9, &[0xff, 0xff, 0xff, 0xff, 0x07]).is_err());
        // A record declaring 2^30 headers.
        let mut record = vec![0u8, 0, 0, 1, 1];
        record.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
        let mut records = vec![(record.len() as u8) << 1];
        records.extend_from_slice(&record);
        assert!(check_records(&records, 1).is_err());
        // A plain record (no key, value "v", no header), then a stray byte.
        let record = [0u8, 0, 0, 1, 2, b'v', 0];
        let mut records = vec![(record.len() as u8) << 1];
        records.extend_from_slice(&record);
        assert_eq!(check_records(&records, 1), Ok(()));
        records.push(0);
        assert!(check_records(&records, 1).is_err());
    }
}
