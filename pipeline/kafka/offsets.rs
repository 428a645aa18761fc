//! Offsets of other consumer groups and high watermarks, for the lag monitor.
//!
//! rdkafka's safe API can only read the committed offsets of a client's *own* group, and fetches
//! watermarks one partition per request. librdkafka's admin API does both in batches
//! (ListConsumerGroupOffsets: all of a group's commits in one call; ListOffsets: the latest
//! offset of many partitions, grouped per leader), so this module calls it directly. The unsafe
//! surface is small: build a request, wait on a private queue for the one result event, copy
//! the answer out, free everything.
//!
//! Calls block for up to `timeout`; run them off the async runtime (spawn_blocking).

use rdkafka::bindings as rd;
use rdkafka::client::Client;
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::time::Duration;

/// A partition's coordinates.
pub type Tp = (String, i32);

/// Owns a raw librdkafka object and frees it on drop.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { (self.1)(self.0) }
        }
    }
}

fn err_str(e: rd::rd_kafka_resp_err_t) -> String {
    unsafe { CStr::from_ptr(rd::rd_kafka_err2str(e)) }
        .to_string_lossy()
        .into_owned()
}

/// Runs one admin call against a private queue and hands its result event to `read`.
fn admin_call<C: ClientContext, R>(
    client: &Client<C>,
    api: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    call: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
    read: impl FnOnce(*mut rd::rd_kafka_event_t) -> Result<R, String>,
) -> Result<R, String> {
    let rk = client.native_ptr();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    unsafe {
        let queue = Owned(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Owned(
            rd::rd_kafka_AdminOptions_new(rk, api),
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errbuf = [0 as std::ffi::c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            ms,
            errbuf.as_mut_ptr(),
            errbuf.len(),
        );
        call(rk, options.0, queue.0);
        // The result arrives once; allow a margin past the request timeout.
        let event = Owned(
            rd::rd_kafka_queue_poll(queue.0, ms.saturating_add(1_000)),
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null() {
            return Err(format!("no answer within {} ms", ms + 1_000));
        }
        let e = rd::rd_kafka_event_error(event.0);
        if e != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let s = rd::rd_kafka_event_error_string(event.0);
            let msg = if s.is_null() {
                err_str(e)
            } else {
                CStr::from_ptr(s).to_string_lossy().into_owned()
            };
            return Err(msg);
        }
        read(event.0)
    }
}

/// Copies (topic, partition, offset, error) out of a partition list.
unsafe fn copy_list(
    list: *const rd::rd_kafka_topic_partition_list_t,
) -> Vec<(Tp, i64, rd::rd_kafka_resp_err_t)> {
    if list.is_null() {
        return Vec::new();
    }
    let l = &*list;
    (0..l.cnt as usize)
        .map(|i| {
            let e = &*l.elems.add(i);
            let topic = CStr::from_ptr(e.topic).to_string_lossy().into_owned();
            ((topic, e.partition), e.offset, e.err)
        })
        .collect()
}

/// The committed offsets of `group`: of every partition it committed (`partitions` None), or of
/// the given ones. Partitions without a commit are absent.
pub fn group_offsets<C: ClientContext>(
    client: &Client<C>,
    group: &str,
    partitions: Option<&[Tp]>,
    timeout: Duration,
) -> Result<HashMap<Tp, i64>, String> {
    let cgroup = CString::new(group).map_err(|_| "group id holds a NUL byte".to_string())?;
    let topics: Vec<CString> = partitions
        .unwrap_or(&[])
        .iter()
        .map(|(t, _)| CString::new(t.as_str()).unwrap_or_default())
        .collect();
    admin_call(
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
        timeout,
        |rk, options, queue| unsafe {
            let list = partitions.map(|parts| {
                let list = Owned(
                    rd::rd_kafka_topic_partition_list_new(parts.len() as i32),
                    rd::rd_kafka_topic_partition_list_destroy,
                );
                for (i, (_, p)) in parts.iter().enumerate() {
                    rd::rd_kafka_topic_partition_list_add(list.0, topics[i].as_ptr(), *p);
                }
                list
            });
            let mut req = rd::rd_kafka_ListConsumerGroupOffsets_new(
                cgroup.as_ptr(),
                list.as_ref().map_or(std::ptr::null(), |l| l.0),
            );
            rd::rd_kafka_ListConsumerGroupOffsets(rk, &mut req, 1, options, queue);
            rd::rd_kafka_ListConsumerGroupOffsets_destroy(req);
        },
        |event| unsafe {
            let result = rd::rd_kafka_event_ListConsumerGroupOffsets_result(event);
            if result.is_null() {
                return Err("unexpected admin result".into());
            }
            let mut n = 0usize;
            let groups = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(result, &mut n);
            let mut out = HashMap::new();
            for i in 0..n {
                let g = *groups.add(i);
                let error = rd::rd_kafka_group_result_error(g);
                if !error.is_null() {
                    return Err(CStr::from_ptr(rd::rd_kafka_error_string(error))
                        .to_string_lossy()
                        .into_owned());
                }
                for (tp, offset, err) in copy_list(rd::rd_kafka_group_result_partitions(g)) {
                    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && offset >= 0 {
                        out.insert(tp, offset);
                    }
                }
            }
            Ok(out)
        },
    )
}

/// Which end of a partition [`list_offsets`] asks for.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// The high watermark: the offset the next record written will get.
    Latest,
    /// The log start: the oldest offset still stored.
    Earliest,
}

/// The high watermark (next offset to be written) of each partition, in one batched request.
/// Partitions the broker could not answer for are absent.
pub fn high_watermarks<C: ClientContext>(
    client: &Client<C>,
    partitions: &[Tp],
    timeout: Duration,
) -> Result<HashMap<Tp, i64>, String> {
    list_offsets(client, partitions, End::Latest, timeout)
}

/// One end of each partition, in one batched request. Partitions the broker could not answer
/// for are absent.
pub fn list_offsets<C: ClientContext>(
    client: &Client<C>,
    partitions: &[Tp],
    end: End,
    timeout: Duration,
) -> Result<HashMap<Tp, i64>, String> {
    let spec = match end {
        End::Latest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_LATEST as i64,
        End::Earliest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64,
    };
    if partitions.is_empty() {
        return Ok(HashMap::new());
    }
    let topics: Vec<CString> = partitions
        .iter()
        .map(|(t, _)| CString::new(t.as_str()).unwrap_or_default())
        .collect();
    admin_call(
        client,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
        timeout,
        |rk, options, queue| unsafe {
            let list = Owned(
                rd::rd_kafka_topic_partition_list_new(partitions.len() as i32),
                rd::rd_kafka_topic_partition_list_destroy,
            );
            for (i, (_, p)) in partitions.iter().enumerate() {
                let e = rd::rd_kafka_topic_partition_list_add(list.0, topics[i].as_ptr(), *p);
                (*e).offset = spec;
            }
            rd::rd_kafka_ListOffsets(rk, list.0, options, queue);
        },
        |event| unsafe {
            let result = rd::rd_kafka_event_ListOffsets_result(event);
            if result.is_null() {
                return Err("unexpected admin result".into());
            }
            let mut n = 0usize;
            let infos = rd::rd_kafka_ListOffsets_result_infos(result, &mut n);
            let mut out = HashMap::with_capacity(n);
            for i in 0..n {
                let tp = rd::rd_kafka_ListOffsetsResultInfo_topic_partition(*infos.add(i));
                if tp.is_null() {
                    continue;
                }
                let e = &*tp;
                if e.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && e.offset >= 0 {
                    let topic = CStr::from_ptr(e.topic).to_string_lossy().into_owned();
                    out.insert((topic, e.partition), e.offset);
                }
            }
            Ok(out)
        },
    )
}

/// Names of the consumer groups the cluster knows.
pub fn list_groups<C: ClientContext>(
    client: &Client<C>,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    client
        .fetch_group_list(None, timeout)
        .map(|l| l.groups().iter().map(|g| g.name().to_string()).collect())
        .map_err(|e| e.to_string())
}
/// A commit that found no stored offset to commit: not a failure.
pub fn nothing_to_commit(e: &rdkafka::error::KafkaError) -> bool {
    e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset)
}
