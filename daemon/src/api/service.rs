use ifa_api::errors::Reason;
use ifa_api::v1;
use ifa_api::v1::allocator_server::Allocator;
use tonic::{Code, Request, Response, Status};

use std::pin::Pin;

use tokio::sync::watch;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};

use crate::api::convert::{
    class_from_proto, event_to_proto, hart_to_proto, irq_rate_hint_from_proto, layout_from_proto,
    migrate_to_proto, move_to_proto, place_to_proto, status_to_proto, vm_to_proto,
};
use crate::api::status::{Failure, core_status, invalid_argument};
use crate::clock::Clock;
use crate::core::request::PlaceSpec;
use crate::core::{VcpuKey, VmId};
use crate::engine::actor::EngineHandle;

/// ifa.v1.Allocator. Validation happens here, before anything reaches the
/// engine, so bad input changes nothing.
#[derive(Clone)]
pub struct AllocatorService {
    engine: EngineHandle,
    clock: Clock,
    /// Turns true on shutdown: watch streams end then, or they would hold
    /// the server (and the daemon) open.
    stop: watch::Receiver<bool>,
    /// Served on the read-only socket: every change is refused.
    read_only: bool,
}

impl AllocatorService {
    pub fn new(engine: EngineHandle, clock: Clock, stop: watch::Receiver<bool>) -> Self {
        AllocatorService {
            engine,
            clock,
            stop,
            read_only: false,
        }
    }

    /// The same service for the read-only socket.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn may_change(&self) -> Result<(), Status> {
        if self.read_only {
            return Err(Failure::new(
                Code::PermissionDenied,
                Reason::ReadOnlySocket,
                "this is ifad's read-only socket: reads and watch only; changes go through the main socket",
            )
            .into_status());
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }
}

fn place_spec(mut r: v1::PlaceRequest) -> Result<PlaceSpec, Status> {
    let hint = irq_rate_hint_from_proto(r.expected_irq_rate.take());
    let spec = PlaceSpec::parse(&r.vm, r.vcpus, class_from_proto(r.class), &r.devices)
        .map_err(core_status)?
        .with_priority(r.priority)
        .with_harts(&r.harts);
    let spec = match layout_from_proto(r.guest_imsic).map_err(core_status)? {
        Some(layout) => spec.with_guest_imsic(layout).map_err(core_status)?,
        None => spec,
    };
    match hint {
        Some(h) => h
            .per_vcpu(spec.vcpus)
            .and_then(|rates| spec.with_expected_irq_rates(rates))
            .map_err(core_status),
        None => Ok(spec),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

#[tonic::async_trait]
impl Allocator for AllocatorService {
    type WatchStream = EventStream;

    async fn watch(&self, req: Request<v1::WatchRequest>) -> Result<Response<EventStream>, Status> {
        let after = req.into_inner().after;
        let sub = self
            .engine
            .call(move |e| e.watch(after))
            .await?
            .map_err(|e| {
                Failure::new(Code::OutOfRange, Reason::EventsExpired, e.to_string()).into_status()
            })?;
        let (missed, live) = (sub.missed, sub.live);
        let mut last = sub.last;
        let live = BroadcastStream::new(live).map(move |r| match r {
            Ok(e) => {
                last = e.seq;
                Ok(event_to_proto(e))
            }
            // A watcher that cannot keep up is cut off with where to resume;
            // it never silently misses events.
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Failure::new(
                Code::Aborted,
                Reason::WatcherLagged,
                format!("this watcher fell {n} events behind; watch again after {last}"),
            )
            .with("resume_after", last)
            .into_status()),
        });
        let events = tokio_stream::iter(missed.into_iter().map(|e| Ok(event_to_proto(e))))
            .chain(live)
            .map(Some);
        let stop = WatchStream::new(self.stop.clone())
            .filter(|stopping| *stopping)
            .map(|_| None);
        let stream = events
            .merge(stop)
            .take_while(Option::is_some)
            .map(|e| e.expect("taken while some"));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_status(
        &self,
        _: Request<v1::GetStatusRequest>,
    ) -> Result<Response<v1::Status>, Status> {
        let s = self.engine.call(|e| e.status()).await?;
        Ok(Response::new(status_to_proto(s)))
    }

    async fn list_harts(
        &self,
        _: Request<v1::ListHartsRequest>,
    ) -> Result<Response<v1::ListHartsResponse>, Status> {
        let harts = self.engine.call(|e| e.harts()).await?;
        Ok(Response::new(v1::ListHartsResponse {
            harts: harts.into_iter().map(hart_to_proto).collect(),
        }))
    }

    async fn place(
        &self,
        req: Request<v1::PlaceRequest>,
    ) -> Result<Response<v1::PlaceResponse>, Status> {
        self.may_change()?;
        let spec = place_spec(req.into_inner())?;
        let now = self.now();
        let out = self.engine.change(move |e| e.place(spec, now)).await??;
        Ok(Response::new(place_to_proto(out)))
    }

    async fn advise(
        &self,
        req: Request<v1::PlaceRequest>,
    ) -> Result<Response<v1::PlaceResponse>, Status> {
        let spec = place_spec(req.into_inner())?;
        let out = self
            .engine
            .call(move |e| e.advise(spec))
            .await?
            .map_err(core_status)?;
        Ok(Response::new(place_to_proto(out)))
    }

    async fn list_vms(
        &self,
        _: Request<v1::ListVmsRequest>,
    ) -> Result<Response<v1::ListVmsResponse>, Status> {
        let vms = self.engine.call(|e| e.vms()).await?;
        Ok(Response::new(v1::ListVmsResponse {
            vms: vms.into_iter().map(vm_to_proto).collect(),
        }))
    }

    async fn get_vm(&self, req: Request<v1::GetVmRequest>) -> Result<Response<v1::Vm>, Status> {
        let id = VmId::parse(&req.into_inner().vm).map_err(core_status)?;
        let vm = self
            .engine
            .call(move |e| e.vm(&id))
            .await?
            .map_err(core_status)?;
        Ok(Response::new(vm_to_proto(vm)))
    }

    async fn release(
        &self,
        req: Request<v1::ReleaseRequest>,
    ) -> Result<Response<v1::ReleaseResponse>, Status> {
        self.may_change()?;
        let id = VmId::parse(&req.into_inner().vm).map_err(core_status)?;
        let now = self.now();
        let freed = self.engine.change(move |e| e.release(&id, now)).await??;
        Ok(Response::new(v1::ReleaseResponse {
            vsfiles_freed: freed,
        }))
    }

    async fn migrate(
        &self,
        req: Request<v1::MigrateRequest>,
    ) -> Result<Response<v1::MigrateResponse>, Status> {
        self.may_change()?;
        let r = req.into_inner();
        let key = VcpuKey {
            vm: VmId::parse(&r.vm).map_err(core_status)?,
            vcpu: r.vcpu,
        };
        let now = self.now();
        let out = self
            .engine
            .change(move |e| e.migrate(&key, r.hart, now))
            .await??;
        Ok(Response::new(migrate_to_proto(out)))
    }

    async fn drain(
        &self,
        req: Request<v1::DrainRequest>,
    ) -> Result<Response<v1::DrainResponse>, Status> {
        self.may_change()?;
        let hart = req.into_inner().hart;
        let now = self.now();
        let moved = self.engine.change(move |e| e.drain(hart, now)).await??;
        Ok(Response::new(v1::DrainResponse {
            moved: moved.into_iter().map(move_to_proto).collect(),
        }))
    }

    async fn attach(&self, req: Request<v1::AttachRequest>) -> Result<Response<v1::Vm>, Status> {
        self.may_change()?;
        let r = req.into_inner();
        let id = VmId::parse(&r.vm).map_err(core_status)?;
        if r.pid == 0 {
            return Err(invalid_argument("pid", "must be a process id"));
        }
        let now = self.clock.now();
        let vm = self
            .engine
            .change(move |e| e.attach(&id, r.pid, now))
            .await??;
        Ok(Response::new(vm_to_proto(vm)))
    }

    async fn undrain(
        &self,
        req: Request<v1::UndrainRequest>,
    ) -> Result<Response<v1::UndrainResponse>, Status> {
        self.may_change()?;
        let hart = req.into_inner().hart;
        let now = self.now();
        self.engine.change(move |e| e.undrain(hart, now)).await??;
        Ok(Response::new(v1::UndrainResponse {}))
    }
}
