"""cnnviz: the router. Registers every page and draws the shared sidebar.

Start with ``streamlit run app.py``: it also starts the local training workers (sized to the
cores; ``CNNVIZ_WORKERS=0`` for none), which stop when the server does. Nothing here imports
torch, so the Home page paints at once; it starts importing torch in the background for the pages
that need it, and those pages draw their title before they import it.
"""

import streamlit as st

from cnnviz.ui.nav import build_pages, preload_torch
from cnnviz.ui.sidebar import draw_sidebar
from cnnviz.ui.workers import start_workers

st.set_page_config(page_title="cnnviz: compare CNN architectures", page_icon=":material/neurology:", layout="wide")
start_workers()
preload_torch()
page = st.navigation(build_pages())
draw_sidebar()
page.run()
