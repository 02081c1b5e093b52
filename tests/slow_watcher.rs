//! A watcher too slow for the live feed (README, "Events"): a Watch client
//! that stops reading is cut off, with the number to resume after, while
//! a watcher that reads keeps receiving every event in order.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use ifa_api::errors::Reason;
use ifa_api::v1;
use ifa_api::v1::allocator_client::AllocatorClient;
use ifa_e2e::Daemon;
use tokio::net::UnixStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_types::StatusExt;

/// Refusals made: each one is an event. Well over what the slow client's
/// HTTP/2 window and the 1024 events a live watcher may fall behind hold
/// between them (about 550 + 1024 here).
const EVENTS: usize = 3000;

/// A client whose stream window is the protocol's default 64 KiB, so a
/// watch it does not read stops the server's sending soon. Its connection
/// window is large on purpose: h2 (0.4.20) lets a peer leave at most half
/// the connection window's worth of small unread DATA frames (each event
/// is one) before it drops the connection itself (GOAWAY
/// ENHANCE_YOUR_CALM, "too_many_data_frames"); with a 64 KiB connection
/// window that cut comes first and says nothing of where to resume.
async fn small_window_client(socket: PathBuf) -> AllocatorClient<Channel> {
    let channel = Endpoint::from_static("http://ifad.local")
        .initial_stream_window_size(Some(65_535))
        .initial_connection_window_size(Some(8 << 20))
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .unwrap();
    AllocatorClient::new(channel)
}

#[test]
fn a_watcher_that_does_not_read_is_cut_off_and_others_keep_receiving() {
    let d = Daemon::simulate("harts=2,files=2");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut slow = small_window_client(d.socket.clone())
            .await
            .watch(v1::WatchRequest { after: None })
            .await
            .unwrap()
            .into_inner();
        let mut fast = ifa_api::client::connect(&d.socket)
            .await
            .unwrap()
            .watch(v1::WatchRequest { after: None })
            .await
            .unwrap()
            .into_inner();
        let reader = tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(EVENTS);
            while seqs.len() < EVENTS {
                let e = fast
                    .message()
                    .await
                    .expect("the fast watcher is never cut off");
                seqs.push(e.expect("the stream goes on").seq);
            }
            seqs
        });

        let mut c = ifa_api::client::connect(&d.socket).await.unwrap();
        let big = v1::PlaceRequest {
            vm: "big".into(),
            vcpus: 9,
            class: v1::Class::Guaranteed.into(),
            ..Default::default()
        };
        for _ in 0..EVENTS {
            let s = c.place(big.clone()).await.unwrap_err();
            assert_eq!(s.code(), Code::ResourceExhausted);
        }
        let seqs = reader.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "every event, in order, without a gap"
        );

        // The slow watcher reads now: what was in flight, then the cut.
        let mut got = Vec::new();
        let cut = loop {
            let next = tokio::time::timeout(ifa_e2e::WAIT_TIMEOUT, slow.message());
            match next.await.expect("the slow watcher was not cut off") {
                Ok(Some(e)) => got.push(e.seq),
                Ok(None) => panic!("ended without an error after {} events", got.len()),
                Err(s) => break s,
            }
        };
        assert!(got.len() < EVENTS, "it was cut off before the end");
        assert_eq!(got[..], seqs[..got.len()], "what it got came in order");
        let last = *got.last().expect("some events were in flight");
        assert_eq!(cut.code(), Code::Aborted, "{cut:?}");
        let info = cut.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, Reason::WatcherLagged.as_str());
        assert_eq!(info.metadata["resume_after"], last.to_string());
        assert!(
            cut.message().contains(&format!("watch again after {last}")),
            "{}",
            cut.message()
        );
        eprintln!("the slow watcher got {} of {EVENTS} events", got.len());
    });
}
