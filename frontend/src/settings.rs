//! The Alignment page's settings form: the fields of [`run_form`](crate::run_form) for the
//! chosen action, each read from the run's TOML and written back into it when changed.

use std::collections::HashMap;

use fuselab_shared::api::AlignAction;
use leptos::prelude::*;

use crate::run_form::{Field, Kind, fields, read, write};

/// The form; `config` is the TOML it reads and edits.
#[component]
pub fn Settings(action: RwSignal<AlignAction>, config: RwSignal<String>) -> impl IntoView {
    let errors = RwSignal::new(HashMap::<&'static str, String>::new());
    // A field's text as typed: written into the TOML, or its error shown beside it.
    let commit =
        move |field: Field, input: String| match write(&config.get_untracked(), &field, &input) {
            Ok(text) => {
                errors.update(|e| {
                    e.remove(field.id);
                });
                config.set(text);
            }
            Err(error) => errors.update(|e| {
                e.insert(field.id, error.to_string());
            }),
        };
    // Only a new action rebuilds the fields; their values follow the TOML, so focus stays
    // where it is while a field is written.
    let value = move |field: Field| read(&config.get(), &field).unwrap_or_default();
    let broken = move || {
        let first = fields(action.get()).into_iter().next()?;
        read(&config.get(), &first).err()
    };
    view! {
        {move || broken().map(|error| view! {
            <p id="align-form-error" class="error">
                {format!("{error}. Fix it in the TOML tab, or reset to the example.")}
            </p>
        })}
        {move || view! {
            <div class="grid-fields">
                {fields(action.get()).into_iter().map(|field| {
                    let id = format!("align-{}", field.id);
                    let help_id = format!("{id}-help");
                    let error = move || errors.with(|e| e.get(field.id).cloned());
                    let control = match field.kind {
                        Kind::Choice(options) => view! {
                            <label for=id.clone()>{field.label}</label>
                            <select id=id.clone() aria-describedby=help_id.clone()
                                prop:value=move || value(field)
                                on:change=move |e| commit(field, event_target_value(&e))>
                                {options.iter().map(|o| view! { <option value=*o>{*o}</option> }).collect_view()}
                            </select>
                        }.into_any(),
                        Kind::Choices(options) => view! {
                            <fieldset id=id.clone() aria-describedby=help_id.clone()>
                                <legend>{field.label}</legend>
                                {options.iter().map(|o| {
                                    let chosen = move || value(field).split(',').map(str::trim).any(|c| c == *o);
                                    let toggle = move |e| {
                                        let keep = event_target_checked(&e);
                                        let current = value(field);
                                        let next: Vec<&str> = options.iter().copied().filter(|x| {
                                            if x == o { keep } else { current.split(',').map(str::trim).any(|c| c == *x) }
                                        }).collect();
                                        commit(field, next.join(", "));
                                    };
                                    view! {
                                        <label class="inline">
                                            <input type="checkbox" value=*o prop:checked=chosen on:change=toggle />
                                            " "{*o}
                                        </label>
                                    }
                                }).collect_view()}
                            </fieldset>
                        }.into_any(),
                        _ => view! {
                            <label for=id.clone()>{field.label}</label>
                            <input id=id.clone() type="text" spellcheck="false" aria-describedby=help_id.clone()
                                prop:value=move || value(field) on:change=move |e| commit(field, event_target_value(&e)) />
                        }.into_any(),
                    };
                    view! {
                        <div class="field" data-field=field.id>
                            {control}
                            <p class="help" id=help_id>{field.help}</p>
                            {move || error().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
                        </div>
                    }
                }).collect_view()}
            </div>
        }}
    }
}
