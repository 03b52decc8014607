"""Golden face data from the original implementations, for backend/tests/face.rs.

Runs dlib (pip dlib-bin 19.24.6) through face_recognition 1.3.0 and facenet-pytorch 2.6.0's MTCNN
on the test photos and writes faces.json and the 150x150 chips beside this script. Run once, by
hand; the output is committed with it:

    python3 -m venv venv
    venv/bin/pip install "numpy<2" "pillow<10.3" dlib-bin==19.24.6 click requests tqdm \
        torch==2.2.2 torchvision==0.17.2
    venv/bin/pip install --no-deps face_recognition==1.3.0 face_recognition_models==0.3.0 \
        facenet-pytorch==2.6.0
    venv/bin/python make_golden.py PHOTO_DIR    # PHOTO_DIR: what `fuselab models fetch` cached
"""
import json, os, sys

import dlib
import face_recognition
import face_recognition.api as fr_api
import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png"]
here = os.path.dirname(os.path.abspath(__file__))
photo_dir = sys.argv[1]
os.makedirs(os.path.join(here, "chips"), exist_ok=True)
torch.set_num_threads(1)
mtcnn = MTCNN(keep_all=True, device="cpu")

out = {
    "generator": "backend/tests/golden/make_golden.py",
    "versions": {
        "dlib": dlib.__version__,
        "face_recognition": face_recognition.__version__,
        "facenet_pytorch": "2.6.0",
        "torch": torch.__version__,
    },
    "photos": {},
}
encodings = {}
for name in PHOTOS:
    path = os.path.join(photo_dir, name)
    image = face_recognition.load_image_file(path)  # PIL, RGB uint8
    locations = face_recognition.face_locations(image)  # HOG, upsample 1
    landmarks = fr_api._raw_face_landmarks(image, locations, model="small")
    faces = []
    for i, (loc, shape) in enumerate(zip(locations, landmarks)):
        rect = shape.rect
        chip = dlib.get_face_chip(image, shape, size=150, padding=0.25)
        chip_name = f"{os.path.splitext(name)[0]}-{i}.png"
        Image.fromarray(chip).save(os.path.join(here, "chips", chip_name))
        from_chip = np.array(fr_api.face_encoder.compute_face_descriptor(chip))
        from_image = np.array(fr_api.face_encoder.compute_face_descriptor(image, shape, 1))
        faces.append({
            "rect": [rect.left(), rect.top(), rect.right(), rect.bottom()],
            "parts": [[p.x, p.y] for p in shape.parts()],
            "chip": chip_name,
            "descriptor_of_chip": from_chip.tolist(),
            "descriptor": from_image.tolist(),
        })
        encodings[(name, i)] = from_image
    pil = Image.open(path).convert("RGB")
    boxes, probs, points = mtcnn.detect(pil, landmarks=True)
    detections = []
    if boxes is not None:
        for b, p, pts in zip(boxes, probs, points):
            detections.append({"box": [float(v) for v in b], "score": float(p),
                               "landmarks": [[float(x), float(y)] for x, y in pts]})
    out["photos"][name] = {
        "size": [int(image.shape[1]), int(image.shape[0])],
        "dlib": faces,
        "mtcnn": detections,
    }
    print(name, len(faces), "dlib faces,", len(detections), "MTCNN faces", file=sys.stderr)

pairs = []
keys = sorted(encodings)
for a in range(len(keys)):
    for b in range(a + 1, len(keys)):
        d = float(np.linalg.norm(encodings[keys[a]] - encodings[keys[b]]))
        same = bool(face_recognition.compare_faces([encodings[keys[a]]], encodings[keys[b]])[0])
        pairs.append({"a": keys[a][0], "a_face": keys[a][1], "b": keys[b][0],
                      "b_face": keys[b][1], "distance": d, "same": same})
out["pairs"] = pairs
with open(os.path.join(here, "faces.json"), "w") as f:
    json.dump(out, f, indent=1)
