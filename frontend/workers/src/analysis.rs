//! The Ensembles page's analysis in the worker: parse the dropped files and validate the pool
//! with the shared engine, then analyse here — every team's focal diversity on WebGPU when the browser
//! has it and the pool is large, on the CPU otherwise — or hand the parsed pool back for the
//! server when it has more teams than the page's limit. Results go back as JSON so the page
//! thread only deserialises them.

use std::{cell::RefCell, rc::Rc};

use fuselab_shaders::{Gpu, team_sums::TeamSumsKernel};
use fuselab_shared::{
    api::AnalyzeRequest,
    ensemble::{
        AnalysisError, FocalTable, InputFile, OverviewOptions, Pool, PoolFiles, Teams, analysis,
        analysis_with,
    },
    worker::ensemble::{Compute, GPU_TEAMS, WorkerOptions, WorkerResult},
};
use wasm_bindgen::prelude::*;

/// Masks per kernel dispatch.
const CHUNK: u32 = 1 << 16;

thread_local! {
    // The worker's WebGPU device and kernel, opened on first use (wgpu handles are not Send).
    static KERNEL: RefCell<Option<Rc<(Gpu, TeamSumsKernel)>>> = const { RefCell::new(None) };
}

async fn kernel() -> Result<Rc<(Gpu, TeamSumsKernel)>, String> {
    if let Some(open) = KERNEL.with(|k| k.borrow().clone()) {
        return Ok(open);
    }
    let gpu = Gpu::request(wgpu::Backends::BROWSER_WEBGPU)
        .await
        .map_err(|e| e.to_string())?;
    let kernel = TeamSumsKernel::new(&gpu).await.map_err(|e| e.to_string())?;
    let open = Rc::new((gpu, kernel));
    KERNEL.with(|k| *k.borrow_mut() = Some(open.clone()));
    Ok(open)
}

fn members_of(mask: u32, models: usize) -> Vec<usize> {
    (0..models).filter(|&m| mask >> m & 1 == 1).collect()
}

fn mask_of(members: &[usize]) -> usize {
    members.iter().map(|&m| 1_usize << m).sum()
}

/// Every team's focal diversity by bit mask, from the GPU's sums; checked against the CPU on
/// every 61st team in range (and the first), which must agree bit for bit.
async fn gpu_focal(
    pool: &Pool,
    options: &OverviewOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(Vec<Option<f64>>, String), String> {
    let models = pool.models();
    if models > fuselab_shaders::team_sums::MAX_MODELS {
        return Err(format!("{models} models: the kernel takes at most 31"));
    }
    let open = kernel().await?;
    let (gpu, kernel) = (&open.0, &open.1);
    let table = FocalTable::new(pool);
    let masks = 1_u32 << models;
    let mut focal = vec![None; masks as usize];
    let mut first = 0;
    while first < masks {
        let count = CHUNK.min(masks - first);
        let sums = kernel
            .run(gpu, &table, first, count)
            .await
            .map_err(|e| e.to_string())?;
        for index in 0..count {
            let mask = first + index;
            let size = mask.count_ones() as usize;
            if size < options.min_size.max(2) || size > options.max_size {
                continue;
            }
            let members = members_of(mask, models);
            let row: Vec<(u64, u64)> = (0..size)
                .map(|slot| {
                    let at = (index as usize * models + slot) * 2;
                    (u64::from(sums[at]), u64::from(sums[at + 1]))
                })
                .collect();
            focal[mask as usize] = table.from_sums(&members, &row).mean;
        }
        first += count;
        progress(u64::from(first), u64::from(masks));
    }
    let mut checked = 0;
    for members in Teams::new(models, options.min_size, options.max_size).step_by(61) {
        let cpu = table.focal_diversity(&members).mean;
        let gpu_value = focal[mask_of(&members)];
        if cpu.map(f64::to_bits) != gpu_value.map(f64::to_bits) {
            return Err(format!(
                "WebGPU gave {gpu_value:?} for team {members:?}, the CPU {cpu:?}"
            ));
        }
        checked += 1;
    }
    Ok((
        focal,
        format!(
            "WebGPU ({}), checked against the CPU on {checked} teams",
            gpu.adapter
        ),
    ))
}

/// Parses, validates and analyses; the GPU path falls back to the CPU, saying why.
async fn run(
    files: &[InputFile<'_>],
    options: &WorkerOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<WorkerResult, AnalysisError> {
    let whole = PoolFiles::detect(files)?.parse()?;
    let invalid = |error| AnalysisError::Pool {
        files: files.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
        error,
    };
    let overview = &options.overview;
    let teams = Teams::total(whole.models.len(), overview.min_size, overview.max_size);
    if options.local_limit.is_some_and(|limit| teams > limit) {
        // Validate here, so a bad file gets the same message wherever it would have run.
        let (input, _) = whole.clone().select(options.split).map_err(invalid)?;
        Pool::new(input).map_err(invalid)?;
        return Ok(WorkerResult::Server {
            teams,
            request: Box::new(AnalyzeRequest {
                pool: whole,
                options: overview.clone(),
                split: options.split,
            }),
        });
    }
    let (input, used) = whole.select(options.split).map_err(invalid)?;
    let pool = Pool::new(input).map_err(invalid)?;
    let use_gpu = match options.compute {
        Compute::Cpu => false,
        Compute::Gpu => true,
        // A software adapter (SwiftShader) is slower than the CPU code it would replace.
        Compute::Auto => {
            teams >= GPU_TEAMS
                && kernel()
                    .await
                    .is_ok_and(|open| !open.0.adapter.is_software())
        }
    };
    let mut result = if use_gpu {
        match gpu_focal(&pool, overview, progress).await {
            Ok((focal, note)) => {
                let lookup = |members: &[usize]| focal[mask_of(members)];
                let mut result = analysis_with(&pool, overview, &lookup, progress)?;
                result.computed_on = Some(note);
                result
            }
            Err(reason) => {
                let mut result = analysis(&pool, overview, progress)?;
                result.computed_on = Some(format!("the CPU (WebGPU failed: {reason})"));
                result
            }
        }
    } else {
        analysis(&pool, overview, progress)?
    };
    result.split = used;
    Ok(WorkerResult::Analysis(Box::new(result)))
}

/// The contents of the files the page handed the worker.
pub(crate) fn file_bytes(contents: &[js_sys::Uint8Array]) -> Vec<Vec<u8>> {
    contents.iter().map(js_sys::Uint8Array::to_vec).collect()
}

/// The files as the pool readers take them: each name with its contents.
pub(crate) fn input_files<'a>(names: &'a [String], bytes: &'a [Vec<u8>]) -> Vec<InputFile<'a>> {
    names
        .iter()
        .zip(bytes)
        .map(|(name, bytes)| InputFile { name, bytes })
        .collect()
}

/// The worker's entry point: file names and contents, [`WorkerOptions`] as JSON, and a progress
/// callback `(done, total)`. Resolves to a [`WorkerResult`] as JSON.
///
/// # Errors
/// A readable message for bad input, as a JS `Error`.
#[wasm_bindgen(js_name = analyzeFiles)]
pub async fn analyze_in_worker(
    names: Vec<String>,
    contents: Vec<js_sys::Uint8Array>,
    options: String,
    progress: js_sys::Function,
) -> Result<String, JsError> {
    let start = js_sys::Date::now();
    let options: WorkerOptions =
        serde_json::from_str(&options).map_err(|e| JsError::new(&format!("options: {e}")))?;
    let bytes = file_bytes(&contents);
    let files = input_files(&names, &bytes);
    let mut report = |done: u64, total: u64| {
        // A failing progress callback must not stop the analysis.
        let _ = progress.call2(
            &JsValue::NULL,
            &(done as f64).into(),
            &(total as f64).into(),
        );
    };
    let mut result = run(&files, &options, &mut report)
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    if let WorkerResult::Analysis(analysis) = &mut result {
        analysis.millis = Some(js_sys::Date::now() - start);
    }
    serde_json::to_string(&result).map_err(|e| JsError::new(&e.to_string()))
}
