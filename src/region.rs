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
//! [ Header (384 B) ][ slot cells: slots x stride ][ worker areas: workers x WORKER_AREA ]
//! [ scratch: u64 words a workload lays out (locks, versions, counters, bitmaps) ]
//! ```
//!
//! The header and the worker areas are the run's control plane (start and done barriers, stop
//! word, each worker's counters, intent record and histogram) for every target; a run whose
//! slots live elsewhere (a database, a directory) maps no slot cells.
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
pub const LAYOUT_VERSION: u32 = 3;

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

/// The region's first bytes. `#[repr(C)]` so every process reads the same offsets. The first
/// cache line says what the region is (written once, before any worker exists; `attach` reads
/// and checks every field of it); the second holds the words the run is steered by.
#[repr(C, align(128))]
pub struct Header {
    pub magic: u64,
    pub version: u32,
    pub slot_count: u32,
    pub worker_count: u32,
    /// `Layout` as a number: 0 packed, 1 padded.
    pub layout: u32,
    /// `AtomicU64` words after the worker areas (a workload's scratch).
    pub scratch_words: u64,
    _pad0: [u8; CACHE_LINE - 32],
    /// Start barrier: workers that have arrived.
    pub arrived: AtomicU32,
    /// Start barrier: 0 until the parent releases everyone, then 1 (a futex word).
    pub go: AtomicU32,
    /// Scripted hold point: workers that have reached it (see `probe`).
    pub held: AtomicU32,
    /// 1 asks every worker to stop after its current update and report (SIGINT, a time limit).
    pub stop: AtomicU32,
    /// Global clock, advanced with `fetch_add` (the incident's `Atomics.add`).
    pub clock: AtomicU64,
    /// The generation stamped into lock words with the owner's index (see `step`).
    pub generation: AtomicU32,
    /// `--pause`: 1 asks the next worker to take a lock to stop itself there; it claims the
    /// request by storing its index + 2, then SIGSTOPs itself (the watcher resumes it).
    pub pause_request: AtomicU32,
    _pad2: [u8; CACHE_LINE - 32],
    /// Done barrier: workers whose loop has ended (each counts itself; the parent counts one
    /// that exits without having done so). Its own line: finishers add to it while others
    /// still read `stop` on every update.
    pub ended: AtomicU32,
    _pad3: [u8; CACHE_LINE - 4],
}

const _: () = assert!(std::mem::size_of::<Header>() == 3 * CACHE_LINE);
const _: () = assert!(std::mem::align_of::<Header>() == CACHE_LINE);
const _: () = assert!(std::mem::offset_of!(Header, arrived) == CACHE_LINE);

/// Worker states, in `WorkerArea::status`.
pub mod status {
    /// Forked (or spawned), not yet past the start barrier.
    pub const STARTING: u32 = 0;
    /// Past the start barrier, updating: the measured window is open for it.
    pub const RUNNING: u32 = 1;
    /// Finished; its report fields are final.
    pub const DONE: u32 = 2;
    /// Finished, but its histogram did not fit its area.
    pub const FAILED: u32 = 3;
}

/// Why a worker stopped before its last update, in `WorkerArea::halt` (its note says more).
pub mod halt {
    /// It did not stop early (or stopped because it was asked to).
    pub const NONE: u32 = 0;
    /// Its target lost the outcome of the update in flight (a broken connection): that update
    /// may or may not have been applied, exactly as for a worker that died.
    pub const UNKNOWN: u32 = 1;
    /// Its target failed in a way that makes the run meaningless.
    pub const FATAL: u32 = 2;
}

/// Stages of a worker's intent record, in `WorkerArea::intent_stage`.
pub mod intent {
    /// The slot is chosen; nothing was read yet.
    pub const CHOSEN: u32 = 0;
    /// The value was read: `intent_old` and `intent_new` hold the update about to be written.
    pub const READ: u32 = 1;
}

/// A few bytes one writer publishes once (a histogram, a message) and others read after it:
/// the bytes first, then their length with Release; readers load the length with Acquire.
#[repr(C)]
pub struct Note<const N: usize> {
    len: AtomicU32,
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: the bytes are written by one writer only, before its Release store of `len`, and
// read only after an Acquire load of `len` (see `publish` and `read`).
unsafe impl<const N: usize> Sync for Note<N> {}

impl<const N: usize> Note<N> {
    /// Publishes `bytes`. Returns false (publishing nothing) if they do not fit.
    ///
    /// Only the note's one writer may call it, once: a worker for its own area's notes, or
    /// whoever won the right to write it (a CAS) for a shared one.
    pub fn publish(&self, bytes: &[u8]) -> bool {
        if bytes.len() > N {
            return false;
        }
        let dst = self.bytes.get() as *mut u8;
        // SAFETY: one writer (the contract above), and readers touch the bytes only after the
        // Acquire load of `len` that pairs with the Release store below, so no access
        // overlaps this write. `bytes` fits (checked above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len()) };
        // Release: pairs with the Acquire in `read`, publishing the bytes above.
        self.len.store(bytes.len() as u32, Ordering::Release);
        true
    }

    /// What was published (empty if nothing was).
    pub fn read(&self) -> &[u8] {
        // Acquire: pairs with the Release in `publish`.
        let len = (self.len.load(Ordering::Acquire) as usize).min(N);
        // SAFETY: the writer finished before its Release store of the length, which the
        // Acquire above observed; nothing writes these bytes afterwards.
        unsafe { std::slice::from_raw_parts(self.bytes.get() as *const u8, len) }
    }
}

/// Bytes of a worker's message (why it halted).
pub const NOTE_BYTES: usize = 252;

/// Bytes reserved per worker for its serialized latency histogram.
pub const HISTOGRAM_CAPACITY: usize = 16 * 1024 - CACHE_LINE - (4 + NOTE_BYTES) - 4;

/// One worker's report, written only by that worker and read by the parent after
/// `status` says DONE (or after the worker died). Cache-line aligned so workers never share
/// a line.
#[repr(C, align(128))]
pub struct WorkerArea {
    pub status: AtomicU32,
    /// `halt::*`: why it stopped early, if it did.
    pub halt: AtomicU32,
    /// Updates this worker has completed (its acknowledgements; also read for progress).
    pub completed: AtomicU64,
    /// Updates its target refused before anything changed (counted; the worker went on).
    pub rejected: AtomicU64,
    pub retries: AtomicU64,
    pub waits: AtomicU64,
    pub wakes: AtomicU64,
    pub start_ns: AtomicU64,
    pub end_ns: AtomicU64,
    /// The update in flight (crash recovery, armed runs only): its op id, the worker's 1-based
    /// sequence number, written before the update starts. In flight while
    /// `intent_op > completed`.
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
    /// `--kill`: 1 while this victim waits, before its last update, for the kill it was
    /// promised (so that a kill always lands while the run has work left).
    pub parked: AtomicU32,
    /// The worker's process id (process mode), stored before it arrives at the barrier: for
    /// whoever watches the run from outside (`Region::attach`).
    pub pid: AtomicU32,
    /// 1 once the worker has counted itself in the header's `ended` (the done barrier), so
    /// that the parent does not count it again when it exits.
    pub ended: AtomicU32,
    _pad: [u8; CACHE_LINE - 120],
    /// Why it halted, in words.
    pub note: Note<NOTE_BYTES>,
    histogram: Note<HISTOGRAM_CAPACITY>,
}

pub const WORKER_AREA: usize = std::mem::size_of::<WorkerArea>();
const _: () = assert!(WORKER_AREA == 16 * 1024);
const _: () = assert!(std::mem::align_of::<WorkerArea>() == CACHE_LINE);
const _: () = assert!(std::mem::offset_of!(WorkerArea, note) == CACHE_LINE);

/// Where one slot's parts live inside the region.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    slots: usize,
    workers: usize,
    layout: Layout,
    /// `AtomicU64` words after the worker areas, for workloads (0 for the plain counter).
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
    /// (offset of slot 0, stride) of the values, the lock words and the mutexes.
    fn columns(&self) -> [(usize, usize); 3] {
        let base = self.slots_offset();
        match self.layout {
            Layout::Packed => [
                (base, 4),
                (base + 4 * self.slots, 4),
                // Starts 8-aligned because 8 * slots bytes precede it.
                (base + 8 * self.slots, PACKED_MUTEX_STRIDE),
            ],
            Layout::Padded => [
                (base, CACHE_LINE),
                (base + 4, CACHE_LINE),
                (base + 8, CACHE_LINE),
            ],
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

/// Where every slot's parts are, computed once per worker: a slot's address is then three
/// multiply-adds and one bounds check, no match on the layout.
#[derive(Clone, Copy)]
pub struct SlotTable<'a> {
    base: *const u8,
    count: usize,
    columns: [(usize, usize); 3],
    _region: std::marker::PhantomData<&'a Region>,
}

impl<'a> SlotTable<'a> {
    /// # Panics
    /// If `i` is out of range: slot indices are validated before any worker starts.
    #[inline]
    pub fn get(&self, i: usize) -> Slot<'a> {
        assert!(i < self.count, "slot {i} out of range");
        let [(v, vs), (l, ls), (m, ms)] = self.columns;
        // SAFETY: the offsets are in bounds (i < slots; see `Geometry::columns`) and aligned
        // (4 for words, 8 for the mutex); the mapping lives as long as the region borrowed for
        // 'a; all are atomics or the mutex's own interior-mutable type.
        unsafe {
            Slot {
                index: i,
                value: &*(self.base.add(v + vs * i) as *const AtomicU32),
                lock: &*(self.base.add(l + ls * i) as *const AtomicU32),
                mutex: &*(self.base.add(m + ms * i) as *const PthreadMutex),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

// SAFETY: a table is a pointer into the shared mapping plus numbers; everything it hands out is
// atomics or a process-shared mutex, which are Sync.
unsafe impl Send for SlotTable<'_> {}
unsafe impl Sync for SlotTable<'_> {}

/// A fresh memfd (MFD_CLOEXEC, no name in any file system) of `len` zeroed bytes, mapped
/// MAP_SHARED: every process forked afterwards sees the same pages, and they vanish with the
/// last process holding them.
fn map_shared(name: &std::ffi::CStr, len: usize) -> Result<(MmapMut, File), Error> {
    let fd = memfd_create(name, MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| Error::System(format!("memfd_create: {e}")))?;
    let file = File::from(fd);
    file.set_len(len as u64)
        .map_err(|e| Error::System(format!("sizing the shared region to {len} bytes: {e}")))?;
    // SAFETY:
    // - the memfd is ours alone: nothing else can truncate it while it is mapped;
    // - every access through the mapping goes through atomics, the pthread mutex or a `Note`.
    let map = unsafe { MmapMut::map_mut(&file) }
        .map_err(|e| Error::System(format!("mapping the shared region ({len} bytes): {e}")))?;
    assert_eq!(map.len(), len);
    assert_eq!(
        map.as_ptr() as usize % 4096,
        0,
        "mmap returns page-aligned memory"
    );
    Ok((map, file))
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

    /// As `create`, plus `scratch` zeroed `AtomicU64` words a workload lays out itself. A run
    /// on another target has no slots here (`slots` 0): only its control plane.
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
        if workers == 0
            || slots > u32::MAX as usize
            || scratch > MAX_REGION_BYTES / 8
            || len > MAX_REGION_BYTES
        {
            return Err(Error::Usage(format!(
                "a region of {slots} slots and {workers} workers ({len} bytes) cannot be mapped"
            )));
        }
        let (mut map, file) = map_shared(c"racepool", len)?;
        // SAFETY: offset 0 is page aligned, the header fits (len >= size_of Header), the
        // memory is zeroed (a fresh memfd), and no other process exists yet to race with.
        let header = unsafe { &mut *(map.as_mut_ptr() as *mut Header) };
        header.magic = MAGIC;
        header.version = LAYOUT_VERSION;
        header.slot_count = slots as u32;
        header.worker_count = workers as u32;
        header.layout = layout as u32;
        header.scratch_words = scratch as u64;
        let region = Region {
            map,
            geometry,
            _file: file,
        };
        for i in 0..slots {
            let slot = region.slot(i);
            slot.value.store(initial, Ordering::Relaxed);
            slot.mutex.init()?;
        }
        Ok(region)
    }

    /// Maps a region another process created (a running `torture`'s memfd, opened through
    /// `/proc/PID/fd/N`) to watch it: reads and checks every field of its header first.
    pub fn attach(file: File) -> Result<Region, Error> {
        let bad = |why: String| Error::Usage(format!("not a racepool region: {why}"));
        let len = file.metadata().map_err(|e| bad(e.to_string()))?.len() as usize;
        if len < std::mem::size_of::<Header>() || len > MAX_REGION_BYTES {
            return Err(bad(format!("{len} bytes")));
        }
        // SAFETY: as in `map_shared`: the creator sizes the memfd once before any worker exists
        // and never truncates it; every access goes through atomics, the mutex or a `Note`.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| bad(e.to_string()))?;
        // SAFETY: page aligned, at least a header long (checked above); the identity fields
        // were written before the creator forked anything and never change.
        let header = unsafe { &*(map.as_ptr() as *const Header) };
        if header.magic != MAGIC {
            return Err(bad(format!("magic {:#x}", header.magic)));
        }
        if header.version != LAYOUT_VERSION {
            return Err(bad(format!(
                "layout version {} (this build reads {LAYOUT_VERSION})",
                header.version
            )));
        }
        let layout = match header.layout {
            0 => Layout::Packed,
            1 => Layout::Padded,
            l => return Err(bad(format!("layout {l}"))),
        };
        let geometry = Geometry {
            slots: header.slot_count as usize,
            workers: header.worker_count as usize,
            layout,
            scratch: header.scratch_words as usize,
        };
        if geometry.workers == 0 || geometry.len() != len {
            return Err(bad(format!(
                "{} slots, {} workers and {} scratch words do not make {len} bytes",
                geometry.slots, geometry.workers, geometry.scratch
            )));
        }
        Ok(Region {
            map,
            geometry,
            _file: file,
        })
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

    /// Every slot's address, for a worker to compute once.
    #[inline]
    pub fn slots(&self) -> SlotTable<'_> {
        SlotTable {
            base: self.map.as_ptr(),
            count: self.geometry.slots,
            columns: self.geometry.columns(),
            _region: std::marker::PhantomData,
        }
    }

    /// # Panics
    /// If `i` is out of range: slot indices are validated before any worker starts.
    #[inline]
    pub fn slot(&self, i: usize) -> Slot<'_> {
        self.slots().get(i)
    }

    /// # Panics
    /// If `w` is out of range.
    pub fn worker(&self, w: usize) -> &WorkerArea {
        assert!(w < self.geometry.workers, "worker {w} out of range");
        let offset = self.geometry.workers_offset() + w * WORKER_AREA;
        // SAFETY: in bounds (w < workers), 128-aligned (workers_offset is a multiple of 128 and
        // so is WORKER_AREA), and the fields shared across processes are atomics or notes.
        unsafe { &*(self.map.as_ptr().add(offset) as *const WorkerArea) }
    }

    /// The workload's words after the worker areas (empty for the plain counter).
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
        let slots = self.slots();
        (0..self.slot_count())
            .map(|i| slots.get(i).value.load(Ordering::SeqCst))
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
        self.histogram.publish(bytes)
    }

    /// The histogram bytes a finished worker published.
    pub fn histogram(&self) -> &[u8] {
        self.histogram.read()
    }
}

/// A `#[repr(C)]` type made only of atomics and `Note`s: all-zero bytes are a valid value of
/// it, and it may be shared between processes through a mapping.
///
/// # Safety
/// The implementor promises both: every field is valid when zeroed, and every field is safe to
/// access from several processes at once (atomics, or a `Note` used by its contract).
pub unsafe trait Shareable: Sync {}

/// A small block of shared state of its own (a store's flags), mapped like the region: a
/// memfd, MAP_SHARED, created before the first fork.
pub struct SharedBlock<T: Shareable> {
    map: MmapMut,
    _file: File,
    _t: std::marker::PhantomData<T>,
}

impl<T: Shareable> SharedBlock<T> {
    pub fn new() -> Result<SharedBlock<T>, Error> {
        const { assert!(std::mem::align_of::<T>() <= 4096) };
        let (map, file) = map_shared(c"racepool-block", std::mem::size_of::<T>().max(1))?;
        Ok(SharedBlock {
            map,
            _file: file,
            _t: std::marker::PhantomData,
        })
    }
}

impl<T: Shareable> std::ops::Deref for SharedBlock<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page aligned and `size_of::<T>()` long; zeroed bytes are a
        // valid T and every shared access is through atomics or notes (`Shareable`).
        unsafe { &*(self.map.as_ptr() as *const T) }
    }
}
