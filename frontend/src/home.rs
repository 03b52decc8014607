//! The home page: what each tool does in plain words, where its data goes, and a way into each.

use leptos::prelude::*;

/// Where a tool's data is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// In this browser only.
    Device,
    /// In this browser, with parts that use the server when asked.
    Both,
    /// On the server, for signed-in users.
    Server,
}

impl Where {
    fn name(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Both => "both",
            Self::Server => "server",
        }
    }
}

/// One tool: its page, name, what it does and where the data goes.
struct Tool {
    href: &'static str,
    name: &'static str,
    what: &'static str,
    place: Where,
    data: &'static str,
}

const TOOLS: [Tool; 6] = [
    Tool {
        href: "/protect",
        name: "Protect photos",
        what: "Add your personal, nearly invisible mask to the faces in your photos, so that \
               face-recognition systems find it harder to recognise you. Your mask is made once \
               from a few selfies; your key removes the protection again. It makes recognition \
               harder but does not yet reliably defeat it: the measured figures are in the \
               protection guide (docs/guide/faces-and-masks.md).",
        place: Where::Both,
        data: "Photos you protect stay on this device. Making your mask sends the selfies you \
               choose to this server, which forgets them when the mask is made.",
    },
    Tool {
        href: "/faces",
        name: "Faces",
        what: "Find the faces in your photos and see whether two photos show the same person, \
               as two open face-recognition models (dlib's and faceres) judge it.",
        place: Where::Device,
        data: "Your photos stay on this device; only the models are fetched.",
    },
    Tool {
        href: "/ensembles",
        name: "Ensembles",
        what: "Drop in your models' predictions (or LLM answers) and find the small teams of \
               models that fail on different samples and vote most accurately; train a learned \
               combiner for a team, and save or share the report.",
        place: Where::Both,
        data: "Analysed on this device; very large pools, and saved reports, on this server when \
               you are signed in.",
    },
    Tool {
        href: "/pose",
        name: "Pose",
        what: "Find 17 body keypoints in every frame of a short clip with a JM-Pose model, and \
               scrub through the skeletons drawn over it.",
        place: Where::Device,
        data: "Your clip stays on this device.",
    },
    Tool {
        href: "/align",
        name: "Alignment",
        what: "Run harmful fine-tuning studies with their defences (Booster, Vaccine, Lisa) and \
               LLM-ensemble fusion, follow them, and read their results and reports.",
        place: Where::Server,
        data: "Runs on this server, for an account allowed to train.",
    },
    Tool {
        href: "/ctr",
        name: "CTR",
        what: "Compare click-through-rate models (DIN, DIN with a trigger, CCN) over seeds on a \
               synthetic benchmark with a known truth, or on a MovieLens proxy.",
        place: Where::Server,
        data: "Runs on this server, for an account allowed to train.",
    },
];

/// The page.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <section id="home" class="tool" aria-labelledby="home-title">
            <h2 id="home-title">"What you can do here"</h2>
            <p>
                "fuselab runs on this server, which its operator controls. Each tool says where
                your data goes: the marked ones work inside this browser and send nothing."
            </p>
            <ul class="cards">
                {TOOLS.iter().map(|tool| view! {
                    <li class="card" data-where=tool.place.name()>
                        <h3><a href=tool.href>{tool.name}</a></h3>
                        <p>{tool.what}</p>
                        <p class="where">
                            {(tool.place == Where::Device).then_some(view! { <strong>"On this device. "</strong> })}
                            {tool.data}
                        </p>
                    </li>
                }).collect_view()}
            </ul>
        </section>
    }
}
