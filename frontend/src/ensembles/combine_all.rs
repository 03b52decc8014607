//! The top-K table's *combined accuracy* column: a combiner trained for every listed team, one
//! team after another in the worker (the CLI's code, so the same numbers as
//! `fuselab ensemble combine --team`).

use std::collections::HashMap;
use std::rc::Rc;

use fuselab_shared::ensemble::combine::{CombineOptions, Method};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use super::combine::{
    CombineRequest, CombineResult, PoolSource, cancel_run, method_of, start_combine,
};

/// One team's cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Trained and scored on test.
    Done(f64),
    /// The combiner could not run.
    Failed(String),
}

/// The column's state, shared by the controls and the table.
#[derive(Clone, Copy)]
pub struct Column {
    cells: RwSignal<HashMap<Vec<usize>, Cell>>,
    running: RwSignal<Option<usize>>,
    handle: StoredValue<Option<JsValue>, LocalStorage>,
}

impl Column {
    /// An empty column.
    pub fn new() -> Self {
        let column = Self {
            cells: RwSignal::new(HashMap::new()),
            running: RwSignal::new(None),
            handle: StoredValue::new_local(None),
        };
        on_cleanup(move || {
            if let Some(Some(running)) = column.handle.try_get_value() {
                cancel_run(&running);
            }
        });
        column
    }

    /// The cell of `members`, as the table shows it.
    pub fn cell(self, members: &[usize]) -> impl IntoView + use<> {
        let members = members.to_vec();
        move || {
            match self.cells.get().get(&members) {
            Some(Cell::Done(accuracy)) => view! {
                <td class="number combined" data-accuracy=accuracy.to_string()>{format!("{accuracy:.4}")}</td>
            }
            .into_any(),
            Some(Cell::Failed(message)) => view! { <td class="combined error" title=message.clone()>"failed"</td> }.into_any(),
            None => view! { <td class="number combined">"–"</td> }.into_any(),
        }
        }
    }
}

/// Trains the combiner of `queue[index]`, then of the next team.
fn combine_next(
    column: Column,
    queue: &Rc<Vec<Vec<usize>>>,
    index: usize,
    method: Method,
    files: &JsValue,
) {
    let Some(members) = queue.get(index) else {
        column.running.try_set(None);
        column.handle.try_set_value(None);
        return;
    };
    column.running.try_set(Some(index));
    let request = CombineRequest {
        members: members.clone(),
        options: CombineOptions {
            method,
            ..CombineOptions::default()
        },
    };
    let Ok(request) = serde_json::to_string(&request) else {
        return;
    };
    let finish = {
        let (queue, files, members) = (queue.clone(), files.clone(), members.clone());
        move |cell: Cell| {
            column
                .cells
                .try_update(|cells| cells.insert(members.clone(), cell));
            combine_next(column, &queue, index + 1, method, &files);
        }
    };
    let done = finish.clone();
    let on_done = Closure::<dyn FnMut(String)>::new(move |json: String| {
        done(match serde_json::from_str::<CombineResult>(&json) {
            Ok(result) => Cell::Done(result.team.combined.accuracy),
            Err(error) => Cell::Failed(format!("the worker's result could not be read: {error}")),
        });
    });
    let on_error =
        Closure::<dyn FnMut(String)>::new(move |message: String| finish(Cell::Failed(message)));
    let started = start_combine(
        files,
        &request,
        Closure::<dyn FnMut(f64, f64)>::new(|_, _| {}).into_js_value(),
        on_done.into_js_value(),
        on_error.into_js_value(),
    );
    column.handle.set_value(Some(started));
}

/// The method and the button that fill the column for `teams`.
#[component]
pub fn CombineAll(teams: Vec<Vec<usize>>, column: Column) -> impl IntoView {
    let source = use_context::<PoolSource>();
    let method = RwSignal::new("weighted-vote".to_owned());
    let count = teams.len();
    let queue = Rc::new(teams);
    let run = move |_| {
        let Some(PoolSource(files)) = source else {
            return;
        };
        column.cells.set(HashMap::new());
        let files = files.get_value().map_or(JsValue::NULL, JsValue::from);
        combine_next(
            column,
            &queue,
            0,
            method_of(&method.get_untracked()),
            &files,
        );
    };
    view! {
        <div class="actions">
            <label>
                "Combined accuracy with "
                <select id="combine-all-method" on:change=move |ev| method.set(event_target_value(&ev))>
                    <option value="weighted-vote" selected>"a weighted vote"</option>
                    <option value="stacking">"stacking"</option>
                    <option value="mlp">"FusionShot's network (mlp)"</option>
                </select>
            </label>
            <button id="combine-all" on:click=run disabled=move || column.running.get().is_some()>
                "Add the column"
            </button>
            {move || column.running.get().map(|i| view! {
                <span role="status">{format!(" team {} of {count}…", i + 1)}</span>
            })}
        </div>
    }
}
