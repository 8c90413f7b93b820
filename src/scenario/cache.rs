//! cache: placeholder.
use super::{Check, Env, WorkerPlan};
use crate::check::Count;
use crate::config::Config;
use crate::region::Region;
use crate::worker::WorkerReport;
pub struct Cache<S>(std::marker::PhantomData<S>);
impl<S> Cache<S> {
    pub fn new(_: &Env<'_>) -> Self {
        Cache(std::marker::PhantomData)
    }
}
impl<S: crate::futex::Scope> super::Scenario for Cache<S> {
    type Worker = ();
    fn start(&self, _: &Env<'_>) {}
    fn step(&self, _: &Env<'_>, _: &mut (), _: u64) -> crate::strategy::Applied {
        Default::default()
    }
    fn finish(&self, _: &Env<'_>, _: ()) {}
}
pub fn prepare(_: &Region, _: u32) {}
pub fn check(_: &Config, _: &WorkerPlan, _: &Region, _: &[WorkerReport]) -> (Count, Check) {
    Default::default()
}
