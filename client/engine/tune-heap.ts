// Imported first by the training entry points (`ferret client`, pretraining, the engine benchmarks), before
// onnxruntime loads: re-executes the process with glibc heap tunables where it can (see heap.ts).
import { tuneGlibcHeap } from "./heap.ts";

tuneGlibcHeap();
