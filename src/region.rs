//! The shared mapping every worker sees: a memfd mapped `MAP_SHARED`.
//!
//! `memmap2::MmapMut::map_anon` maps `MAP_PRIVATE`, so after `fork` each process would write its
//! own copy-on-write page. A memfd mapped with `MmapMut::map_mut` is `MAP_SHARED`: every process
//! forked after the mapping sees the same physical pages. The memfd has no name in any file
//! system, so nothing is left behind: the memory goes when the last process holding it exits.
//!
//! Layout (all offsets fixed at construction, no pointers inside the region):
//!
//! ```text
//! [ Header (256 B) ][ slot cells: slots x stride ][ worker areas: workers x WORKER_AREA ]
//! [ scratch: u64 words a scenario lays out (locks, versions, counters, bitmaps) ]
//! ```
//!
//! A slot cell holds the slot's value, its lock word and its pthread mutex. With the packed
//! layout they are three packed arrays (neighbouring slots share cache lines: false sharing
//! is visible); with the padded layout each slot owns one 128-byte cell.

use std::cell::UnsafeCell;
use std::fs::File;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::MmapMut;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::error::Error;
use crate::pthread::PthreadMutex;

/// "RACEPOOL" in ASCII: the header's first word.
pub const MAGIC: u64 = u64::from_be_bytes(*b"RACEPOOL");
/// Bumped whenever the layout below changes.
pub const LAYOUT_VERSION: u32 = 1;

/// 128 bytes on x86-64: the adjacent-line prefetcher pulls cache lines in pairs, so two
/// 64-byte lines still interfere (the same reason crossbeam's `CachePadded` uses 128).
pub const CACHE_LINE: usize = 128;

/// How slots are spaced in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Values 4 bytes apart: 32 slots share a cache line.
    Packed,
    /// One 128-byte cell per slot: value, lock word and mutex together, nothing else.
    Padded,
}

/// The region's first bytes. `#[repr(C)]` so every process reads the same offsets.
#[repr(C, align(128))]
pub struct Header {
    pub magic: u64,
    pub version: u32,
    pub slot_count: u32,
    pub worker_count: u32,
    pub layout: u32,
    _pad0: [u8; CACHE_LINE - 24],
    /// Start barrier: workers that have arrived.
    pub arrived: AtomicU32,
    /// Start barrier: 0 until the parent releases everyone, then 1 (a futex word).
    pub go: AtomicU32,
    /// Scripted hold point: workers that have reached it (see `probe`).
    pub held: AtomicU32,
    /// 1 asks every worker to stop after its current update and report (SIGINT).
    pub stop: AtomicU32,
    /// Global clock, advanced with `fetch_add` (the incident's `Atomics.add`).
    pub clock: AtomicU64,
    /// The generation stamped into lock words with the owner's index (see `step`).
    pub generation: AtomicU32,
    /// `--pause`: 1 asks the next worker to take a lock to stop itself there; it claims the
    /// request by storing its index + 2, then SIGSTOPs itself (the watcher resumes it).
    pub pause_request: AtomicU32,
    _pad2: [u8; CACHE_LINE - 32],
}

const _: () = assert!(std::mem::size_of::<Header>() == 2 * CACHE_LINE);
const _: () = assert!(std::mem::align_of::<Header>() == CACHE_LINE);

/// Worker states, in `WorkerArea::status`.
pub mod status {
    /// Forked, not yet at the start barrier.
    pub const STARTING: u32 = 0;
    /// Past the start barrier, updating.
    pub const RUNNING: u32 = 1;
    /// Finished; its report fields are final.
    pub const DONE: u32 = 2;
    /// Gave up (its histogram did not fit, or the parent vanished).
    pub const FAILED: u32 = 3;
}

/// Stages of a worker's intent record, in `WorkerArea::intent_stage`.
pub mod intent {
    /// The slot is chosen; nothing was read yet.
    pub const CHOSEN: u32 = 0;
    /// The value was read: `intent_old` and `intent_new` hold the update about to be written.
    pub const READ: u32 = 1;
}

/// Bytes reserved per worker for its serialized latency histogram.
pub const HISTOGRAM_CAPACITY: usize = 16 * 1024 - CACHE_LINE;

/// One worker's report, written only by that worker and read by the parent after
/// `status` says DONE. Cache-line aligned so workers never share a line.
#[repr(C, align(128))]
pub struct WorkerArea {
    pub status: AtomicU32,
    pub histogram_len: AtomicU32,
    /// Updates this worker has completed (its acknowledgements; also read for progress).
    pub completed: AtomicU64,
    pub retries: AtomicU64,
    pub waits: AtomicU64,
    pub wakes: AtomicU64,
    pub start_ns: AtomicU64,
    pub end_ns: AtomicU64,
    /// The update in flight (crash recovery): its op id, the worker's 1-based sequence number,
    /// written before the update starts. In flight while `intent_op > completed`.
    pub intent_op: AtomicU64,
    /// The slot it updates (written before `intent_op`, before the lock is taken).
    pub intent_slot: AtomicU32,
    /// `intent::CHOSEN` until the value was read, then `intent::READ` with old and new below.
    pub intent_stage: AtomicU32,
    pub intent_old: AtomicU32,
    pub intent_new: AtomicU32,
    /// Slot index + 1 whose lock this worker waits for; 0 when it waits for none (watchdog).
    pub waiting_on: AtomicU32,
    /// Slot index + 1 whose lock this worker holds; 0 when none (watchdog, death reports).
    pub holding: AtomicU32,
    /// Robust-mutex repairs this worker made (EOWNERDEAD, then `pthread_mutex_consistent`).
    pub repairs: AtomicU32,
    /// Releases where the lock word no longer named this worker: a recovery robbed a live
    /// owner. Must stay 0.
    pub robbed: AtomicU32,
    /// Set by the worker just before it strikes itself (`--crash-at`): its death is its own,
    /// even if a `--kill` reached it too while it was dying.
    pub struck: AtomicU32,
    _pad: [u8; CACHE_LINE - 100],
    histogram: UnsafeCell<[u8; HISTOGRAM_CAPACITY]>,
}

// SAFETY: the atomics are Sync; the histogram bytes are written only by the area's owner
// before it publishes DONE (Release) and read only after an Acquire of that store.
unsafe impl Sync for WorkerArea {}

pub const WORKER_AREA: usize = std::mem::size_of::<WorkerArea>();
const _: () = assert!(WORKER_AREA == 16 * 1024);
const _: () = assert!(std::mem::align_of::<WorkerArea>() == CACHE_LINE);

/// Where one slot's parts live inside the region.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    slots: usize,
    workers: usize,
    layout: Layout,
    /// `AtomicU64` words after the worker areas, for scenarios (0 for the plain counter).
    scratch: usize,
}

const PACKED_MUTEX_STRIDE: usize = std::mem::size_of::<PthreadMutex>();
const _: () = assert!(PACKED_MUTEX_STRIDE.is_multiple_of(std::mem::align_of::<PthreadMutex>()));
const _: () = assert!(8 + std::mem::size_of::<PthreadMutex>() <= CACHE_LINE);

impl Geometry {
    fn slots_offset(&self) -> usize {
        std::mem::size_of::<Header>()
    }
    fn slots_bytes(&self) -> usize {
        let bytes = match self.layout {
            Layout::Packed => self.slots * (4 + 4 + PACKED_MUTEX_STRIDE),
            Layout::Padded => self.slots * CACHE_LINE,
        };
        bytes.next_multiple_of(CACHE_LINE)
    }
    fn workers_offset(&self) -> usize {
        self.slots_offset() + self.slots_bytes()
    }
    fn scratch_offset(&self) -> usize {
        self.workers_offset() + self.workers * WORKER_AREA
    }
    fn len(&self) -> usize {
        self.scratch_offset() + 8 * self.scratch
    }
    fn value_offset(&self, i: usize) -> usize {
        match self.layout {
            Layout::Packed => self.slots_offset() + 4 * i,
            Layout::Padded => self.slots_offset() + CACHE_LINE * i,
        }
    }
    fn lock_offset(&self, i: usize) -> usize {
        match self.layout {
            Layout::Packed => self.slots_offset() + 4 * self.slots + 4 * i,
            Layout::Padded => self.slots_offset() + CACHE_LINE * i + 4,
        }
    }
    fn mutex_offset(&self, i: usize) -> usize {
        match self.layout {
            Layout::Packed => {
                // Starts 8-aligned because 8 * slots bytes precede it.
                self.slots_offset() + 8 * self.slots + PACKED_MUTEX_STRIDE * i
            }
            Layout::Padded => self.slots_offset() + CACHE_LINE * i + 8,
        }
    }
}

/// The largest region we agree to map: beyond this, the numbers given are a mistake.
pub const MAX_REGION_BYTES: usize = 1 << 36;

/// One slot: its value, the lock word guarding it, and its process-shared mutex.
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    pub index: usize,
    pub value: &'a AtomicU32,
    pub lock: &'a AtomicU32,
    pub mutex: &'a PthreadMutex,
}

/// The shared mapping. Create it before the first fork; every child inherits it.
pub struct Region {
    map: MmapMut,
    geometry: Geometry,
    // Keeps the memfd open for as long as the mapping is used in this process.
    _file: File,
}

impl Region {
    /// Bytes a region of this shape needs, or `None` if it overflows.
    pub fn bytes_needed(slots: usize, workers: usize, layout: Layout) -> Option<usize> {
        let per_slot = match layout {
            Layout::Packed => 8 + PACKED_MUTEX_STRIDE,
            Layout::Padded => CACHE_LINE,
        };
        let slots_bytes = slots.checked_mul(per_slot)?.checked_add(CACHE_LINE)?;
        let workers_bytes = workers.checked_mul(WORKER_AREA)?;
        std::mem::size_of::<Header>()
            .checked_add(slots_bytes)?
            .checked_add(workers_bytes)
    }

    /// Maps a zeroed region for `slots` slots and `workers` workers, each slot starting at
    /// `initial`, with every pthread mutex initialised process-shared.
    pub fn create(
        slots: usize,
        workers: usize,
        layout: Layout,
        initial: u32,
    ) -> Result<Region, Error> {
        Region::create_with_scratch(slots, workers, layout, initial, 0)
    }

    /// As `create`, plus `scratch` zeroed `AtomicU64` words a scenario lays out itself.
    pub fn create_with_scratch(
        slots: usize,
        workers: usize,
        layout: Layout,
        initial: u32,
        scratch: usize,
    ) -> Result<Region, Error> {
        let geometry = Geometry {
            slots,
            workers,
            layout,
            scratch,
        };
        let len = geometry.len();
        if slots == 0 || workers == 0 || scratch > MAX_REGION_BYTES / 8 || len > MAX_REGION_BYTES {
            return Err(Error::Usage(format!(
                "a region of {slots} slots and {workers} workers ({len} bytes) cannot be mapped"
            )));
        }
        let name = c"racepool";
        let fd = memfd_create(name, MemFdCreateFlag::MFD_CLOEXEC)
            .map_err(|e| Error::System(format!("memfd_create: {e}")))?;
        let file = File::from(fd);
        file.set_len(len as u64)
            .map_err(|e| Error::System(format!("sizing the shared region to {len} bytes: {e}")))?;
        // SAFETY:
        // - the memfd is ours alone: nothing else can truncate it while it is mapped;
        // - every access through the mapping goes through atomics or the pthread mutex,
        //   except bytes a single worker owns (see `histogram_mut`).
        let map = unsafe { MmapMut::map_mut(&file) }
            .map_err(|e| Error::System(format!("mapping the shared region ({len} bytes): {e}")))?;
        let mut region = Region {
            map,
            geometry,
            _file: file,
        };
        assert_eq!(region.map.len(), len);
        assert_eq!(
            region.map.as_ptr() as usize % 4096,
            0,
            "mmap returns page-aligned memory"
        );

        // SAFETY: offset 0 is page aligned, the header fits (len >= size_of Header), the
        // memory is zeroed (a fresh memfd), and no other process exists yet to race with.
        let header = unsafe { &mut *(region.map.as_mut_ptr() as *mut Header) };
        header.magic = MAGIC;
        header.version = LAYOUT_VERSION;
        header.slot_count = slots as u32;
        header.worker_count = workers as u32;
        header.layout = layout as u32;
        for i in 0..slots {
            let slot = region.slot(i);
            slot.value.store(initial, Ordering::Relaxed);
            slot.mutex.init()?;
        }
        Ok(region)
    }

    pub fn slot_count(&self) -> usize {
        self.geometry.slots
    }

    pub fn worker_count(&self) -> usize {
        self.geometry.workers
    }

    pub fn layout(&self) -> Layout {
        self.geometry.layout
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the header sits at offset 0 of a page-aligned mapping at least as long as it,
        // was initialised in `create`, and its shared fields are atomics.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    /// # Panics
    /// If `i` is out of range: slot indices are validated before any worker starts.
    #[inline]
    pub fn slot(&self, i: usize) -> Slot<'_> {
        assert!(i < self.geometry.slots, "slot {i} out of range");
        let g = &self.geometry;
        Slot {
            index: i,
            // SAFETY: the offsets are in bounds (i < slots; see Geometry) and aligned (4 for
            // words, 8 for the mutex); the memory lives as long as `self`; all are atomics or
            // the mutex's own interior-mutable type.
            value: unsafe { &*(self.map.as_ptr().add(g.value_offset(i)) as *const AtomicU32) },
            lock: unsafe { &*(self.map.as_ptr().add(g.lock_offset(i)) as *const AtomicU32) },
            mutex: unsafe { &*(self.map.as_ptr().add(g.mutex_offset(i)) as *const PthreadMutex) },
        }
    }

    /// # Panics
    /// If `w` is out of range.
    pub fn worker(&self, w: usize) -> &WorkerArea {
        assert!(w < self.geometry.workers, "worker {w} out of range");
        let offset = self.geometry.workers_offset() + w * WORKER_AREA;
        // SAFETY: in bounds (w < workers), 128-aligned (workers_offset is a multiple of 128 and
        // so is WORKER_AREA), and the fields shared across processes are atomics.
        unsafe { &*(self.map.as_ptr().add(offset) as *const WorkerArea) }
    }

    /// The scenario words after the worker areas (empty for the plain counter).
    pub fn scratch(&self) -> &[AtomicU64] {
        let g = &self.geometry;
        // SAFETY:
        // - in bounds: the mapping is `len` bytes and the scratch is its last 8 * scratch bytes;
        // - 8-aligned: the offset is a multiple of 128 (header, rounded slot cells, 16 KiB areas);
        // - `AtomicU64` has the size and alignment of `u64`, and the memfd started zeroed;
        // - the memory lives as long as `self`, and every access goes through the atomics.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(g.scratch_offset()) as *const AtomicU64,
                g.scratch,
            )
        }
    }

    /// Final values of every slot.
    pub fn values(&self) -> Vec<u32> {
        (0..self.slot_count())
            .map(|i| self.slot(i).value.load(Ordering::SeqCst))
            .collect()
    }

    /// FNV-1a over the slots' final values: one number that names the region's final state.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::Hasher;
        let mut h = fnv::FnvHasher::default();
        for v in self.values() {
            h.write_u32(v);
        }
        h.finish()
    }
}

impl WorkerArea {
    /// Publishes `bytes` as this worker's histogram. Returns false if it does not fit.
    ///
    /// Only the worker that owns this area may call it, once, before storing DONE.
    pub fn publish_histogram(&self, bytes: &[u8]) -> bool {
        if bytes.len() > HISTOGRAM_CAPACITY {
            return false;
        }
        let dst = self.histogram.get() as *mut u8;
        // SAFETY: the area is shared memory written by exactly one worker (its owner), and the
        // parent reads it only after the Acquire load of DONE that pairs with the owner's
        // Release store, so no access overlaps this write. `bytes` fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        // Release: pairs with the Acquire in `histogram`, publishing the bytes above.
        self.histogram_len
            .store(bytes.len() as u32, Ordering::Release);
        true
    }

    /// The histogram bytes a finished worker published.
    pub fn histogram(&self) -> &[u8] {
        // Acquire: pairs with the Release in `publish_histogram`.
        let len = (self.histogram_len.load(Ordering::Acquire) as usize).min(HISTOGRAM_CAPACITY);
        // SAFETY: the owner finished writing before its Release store of the length, which
        // the Acquire above observed; nothing writes these bytes afterwards.
        unsafe { std::slice::from_raw_parts(self.histogram.get() as *const u8, len) }
    }
}
