// Lighthouse audit of the built site: one page of each kind (home, chapter, lab, errata)
// in every language and in both colour schemes, served the way a static host serves it
// (gzip, 404.html).
//
//   node tools/lighthouse.mjs SITE_DIR [--port 8765] [--runs 1] [--min 0.98] [--min-others 1]
//                                      [--out build/lighthouse] [--kinds home,chapter,lab,errata]
//                                      [--schemes light,dark]
//
// The scheme is the reader's OS preference (prefers-color-scheme), which the site follows:
// Chromium is started with --blink-settings=preferredColorScheme=0 (dark) or =1 (light), and
// before auditing, the script checks that the page really rendered in that scheme.
//
// Build SITE_DIR with SITE_URL=http://127.0.0.1:PORT/ first (`make lighthouse` does both).
// Prints the four category scores per page (the median of --runs runs) and exits 1 when one is
// under the budget (issue 20): performance under --min (0.98), accessibility, best practices or
// SEO under --min-others (1.00). Needs Chromium: CHROME_PATH (default /usr/bin/chromium).
import { createServer } from "node:http";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as chromeLauncher from "chrome-launcher";
import lighthouse from "lighthouse";
import puppeteer from "puppeteer-core"; // lighthouse's own dependency

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CATEGORIES = ["performance", "accessibility", "best-practices", "seo"];
const CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const TYPES = { ".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript",
  ".json": "application/json", ".xml": "application/xml", ".svg": "image/svg+xml",
  ".png": "image/png", ".jpg": "image/jpeg", ".ico": "image/x-icon", ".ipynb": "application/json",
  ".gz": "application/gzip", ".woff2": "font/woff2" };
const COMPRESS = new Set([".html", ".css", ".js", ".json", ".xml", ".svg", ".ipynb"]);

function options(argv) {
  const opts = { port: 8765, runs: 1, min: 0.98, "min-others": 1, out: "build/lighthouse", site: null,
    kinds: null, schemes: "light,dark" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (!flag.startsWith("--")) { opts.site = flag; continue; }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    opts[flag.slice(2)] = ["port", "runs", "min", "min-others"].includes(flag.slice(2)) ? Number(value) : value;
  }
  if (!opts.site || !existsSync(path.join(opts.site, "index.html"))) {
    throw new Error(`usage: node tools/lighthouse.mjs SITE_DIR [...]: no index.html in ${opts.site}`);
  }
  return opts;
}

// A static host in miniature: gzip for text, a short cache lifetime, /404.html for a missing path.
function serve(root, port) {
  const server = createServer((req, res) => {
    let file = path.join(root, decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, "index.html");
    let status = 200;
    if (!file.startsWith(path.resolve(root)) || !existsSync(file)) {
      [status, file] = [404, path.join(root, "404.html")];
    }
    const ext = path.extname(file);
    let body = readFileSync(file);
    const headers = { "Content-Type": TYPES[ext] || "application/octet-stream",
      "Cache-Control": "max-age=600" };
    if (COMPRESS.has(ext) && /\bgzip\b/.test(req.headers["accept-encoding"] || "")) {
      body = gzipSync(body);
      headers["Content-Encoding"] = "gzip";
    }
    res.writeHead(status, headers).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`cannot serve on 127.0.0.1:${port}: ${err.code} (try --port)`)));
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

// Pages to audit: home, a chapter, the first lab (when labs exist) and the errata, per language.
// The default language is the one at the site root (it has no SITE/<lang>/index.html).
function pages(site) {
  const docs = path.join(ROOT, "docs");
  const languages = readdirSync(docs).filter((d) => existsSync(path.join(docs, d, "index.md")));
  const prefix = (lang) => (existsSync(path.join(site, lang, "index.html")) ? `${lang}/` : "");
  languages.sort((a, b) => (prefix(a) === "" ? -1 : prefix(b) === "" ? 1 : a.localeCompare(b)));
  const labsDir = path.join(docs, languages[0], "labs");
  const lab = existsSync(labsDir) ? readdirSync(labsDir).filter((f) => f.endsWith(".ipynb")).sort()[0] : undefined;
  const kinds = [["home", ""], ["chapter", "layers/"], ["errata", "errata/"]];
  if (lab) kinds.splice(2, 0, ["lab", `labs/${lab.replace(/\.ipynb$/, "")}/`]);
  else console.log("no lab notebook under docs/*/labs/ yet: no lab page audited");
  return languages.flatMap((lang) => kinds.map(([kind, slug]) => ({ kind, lang, path: `/${prefix(lang)}${slug}` })));
}

// Blink's PreferredColorScheme: 0 dark, 1 light. Material's palette follows it: "slate" / "default".
const SCHEMES = { light: { blink: 1, material: "default" }, dark: { blink: 0, material: "slate" } };

async function checkScheme(chrome, url, scheme) {
  const browser = await puppeteer.connect({ browserURL: `http://127.0.0.1:${chrome.port}` });
  try {
    const tab = await browser.newPage();
    await tab.goto(url, { waitUntil: "load" });
    const seen = await tab.evaluate(() => ({
      dark: matchMedia("(prefers-color-scheme: dark)").matches,
      material: document.body.getAttribute("data-md-color-scheme") }));
    await tab.close();
    if (seen.dark !== (scheme === "dark") || seen.material !== SCHEMES[scheme].material) {
      throw new Error(`asked Chromium for the ${scheme} scheme, the page rendered ${JSON.stringify(seen)}`);
    }
  } finally {
    browser.disconnect();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

async function main() {
  const opts = options(process.argv.slice(2));
  const server = await serve(path.resolve(opts.site), opts.port);
  mkdirSync(opts.out, { recursive: true });
  const rows = [];
  const wanted = opts.kinds ? new Set(opts.kinds.split(",")) : null;
  const audited = pages(opts.site).filter((p) => !wanted || wanted.has(p.kind));
  try {
    for (const scheme of opts.schemes.split(",")) {
      if (!SCHEMES[scheme]) throw new Error(`--schemes: ${scheme} is not one of ${Object.keys(SCHEMES)}`);
      const chrome = await chromeLauncher.launch({ chromePath: process.env.CHROME_PATH || "/usr/bin/chromium",
        chromeFlags: [...CHROME_FLAGS, `--blink-settings=preferredColorScheme=${SCHEMES[scheme].blink}`] });
      try {
        await checkScheme(chrome, `http://127.0.0.1:${opts.port}${audited[0].path}`, scheme);
        for (const page of audited) {
          const url = `http://127.0.0.1:${opts.port}${page.path}`;
          const runs = [];
          for (let i = 0; i < opts.runs; i++) {
            const result = await lighthouse(url, { port: chrome.port, output: "html", logLevel: "error",
              onlyCategories: CATEGORIES });
            runs.push(result.lhr);
            const name = `${page.lang}-${page.kind}-${scheme}${opts.runs > 1 ? `-${i + 1}` : ""}`;
            writeFileSync(path.join(opts.out, `${name}.html`), result.report);
            writeFileSync(path.join(opts.out, `${name}.json`), JSON.stringify(result.lhr));
          }
          const scores = Object.fromEntries(CATEGORIES.map((c) => [c, median(runs.map((r) => r.categories[c].score))]));
          const failing = [...new Set(runs.flatMap((r) => Object.values(r.audits)
            .filter((a) => a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== "informative"
              && a.scoreDisplayMode !== "manual" && isWeighted(r, a.id))
            .map((a) => a.id)))];
          rows.push({ ...page, scheme, url, scores, failing });
          console.log(`${page.path.padEnd(22)} ${scheme.padEnd(5)} ${CATEGORIES.map((c) => `${c} ${scores[c].toFixed(2)}`).join("  ")}`
            + (failing.length ? `   audits below 0.9 in a run: ${failing.join(", ")}` : ""));
        }
      } finally {
        await chrome.kill();
      }
    }
  } finally {
    server.close();
  }
  writeFileSync(path.join(opts.out, "summary.json"), JSON.stringify(rows, null, 1));
  const floor = (category) => (category === "performance" ? opts.min : opts["min-others"]);
  const low = rows.flatMap((r) => CATEGORIES.filter((c) => r.scores[c] < floor(c))
    .map((c) => `${r.path} (${r.scheme}) ${c} ${r.scores[c]}, under ${floor(c)}`));
  console.log(`reports: ${opts.out}/*.html`);
  if (low.length) {
    console.log(`under the budget (performance ${opts.min}, the others ${opts["min-others"]}):\n  ${low.join("\n  ")}`);
    process.exitCode = 1;
  }
}

function isWeighted(lhr, auditId) {
  return Object.values(lhr.categories).some((c) => c.auditRefs.some((ref) => ref.id === auditId && ref.weight > 0));
}

main().catch((err) => { console.error(err.message || err); process.exitCode = 2; });
