"""cnnviz: compare convolutional network architectures by building, inspecting,
training and using them.

This package never imports streamlit outside ``cnnviz.ui`` and keeps its top
level free of torch so that the app's Home page renders without the slow torch
import.
"""

__version__ = "0.1.0"
