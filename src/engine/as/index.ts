// Entry point of the engine's wasm module: the exports the TypeScript side calls.
export {
  init, run, getPc, setPc, getPriv, getInstret, requestExit,
  EXIT_BUDGET, EXIT_WFI, EXIT_SBI, EXIT_HALT, EXIT_PAUSE,
  jitFp, jitAmo, jitCsr, jitStep,
} from './cpu';
export { setTimecmp, getTimecmp, setSoftwareInterrupt, resetHart, interruptPending, readCsr } from './csr';
export { debugTranslate, tlbFlush } from './mmu';
// for translated code (src/engine/jit/): the slow paths of loads and stores, and the state it reads and writes
export { loadSlow, storeSlow, pc, excPending, tlbCur } from './mmu';
export { jitEnable, jitForgetAll, getJitRetired, getJitCalls, stoppedBefore } from './jit';
